"""Import Neuron2Graph's own outputs (``apartresearch/Neuron2Graph``, ``albertsgarde/Neuron2Graph``).

``neurograph import n2g PATH``. PATH is one of these files, a model's folder holding them, or a
folder of such (``output/``, ``n2g/data/``, an N2G checkout with both), each model imported as
its own:

* ``neuron_store.json`` (``NeuronStore.save``): ``{"activating": {token: ["L_N", ...]},
  "important": {token: [...]}}``, the tokens each neuron's graph holds as activating or
  important (context) tokens. Each neuron listed gets ``n2g_activating_tokens`` /
  ``n2g_important_tokens`` (sorted lists) and their counts ``n2g_num_activating`` /
  ``n2g_num_important``; neurons whose role-tagged token sets overlap get
  ``SIMILAR {kind: 'n2g', weight}`` (Jaccard of the sets, the measure the computed N2G uses;
  ``similar_threshold``, default 0.5; a token shared by more than ``similar_max_shared``
  neurons, default 500, proposes no pairs by itself, so stop-word tokens cost nothing).
* saved graphs: the Graphviz DOT source N2G writes per neuron, ``graphs/{layer}_{neuron}``
  (``output/{model}/graphs/``), or ``{layer}_{neuron}/graph`` (the older
  ``neuron_graphs/{model}/{folder}/`` layout; its ``.svg``/``.png`` renders are ignored).
  One cluster per depth, the root's (empty) one first; red nodes (depth 0) are the activating
  tokens, blue ones the context tokens; ``penwidth=7`` marks where a pattern may end; an edge
  ``a -> b [dir=back]`` joins a token to the one before it in the context. Read as
  DeepDecipher reads them (``neuron2graph`` service): importance = 1 - green/255 of the fill.
  They become ``PatternNode``s and ``PATTERN_NEXT`` edges exactly as DeepDecipher's
  neuron2graph pages do (:func:`loaders.neuroscope.add_n2g_page`), with the DOT as the
  neuron's ``n2g_dot``; with ``vocab=`` (a JSON list id→text or object text→id) each pattern
  node ``MATCHES`` the vocabulary tokens that N2G's normalisation maps to its token.
* ``activation_matrix-{model}.json``: ``[[max activation of neuron n of layer l, ...], ...]``,
  the per-neuron maxima N2G scraped from Neuroscope (shipped for solu-6l-pile, pythia-70m,
  gpt2-small, gpt2-medium, gpt2-xl). Every neuron gets ``max_activation`` (with its file in
  the neuron's ``sources``); the matrix covers the whole model, so its shape gives the sizes.

The model is ``--model``, else the one the file names (N2G names a matrix
``activation_matrix-{model}.json``), else the model folder N2G wrote into
(``output/{model}/``): a lone ``neuron_store.json`` or graph elsewhere needs ``--model``.

    summary = await import_n2g(store, "output/solu-6l-pile")
    summary = await import_n2g(store, "n2g/data/activation_matrix-pythia-70m.json")
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from neurograph.domain import check_model_name
from neurograph.errors import InputFileError, InvalidKey

from .importing import (
    Checker,
    ImportModel,
    Plan,
    finite,
    parse_model_info,
    read_json,
    run_import,
    validate_units,
    vocab_texts,
)
from .model_sizes import canonical_name
from .neuroscope import add_n2g_page
from .registry import importer

STORE = "neuron_store.json"
_MATRIX = re.compile(r"^activation_matrix-([A-Za-z0-9_.\-]+)\.json$")
_GRAPH = re.compile(r"^(\d+)_(\d+)(?:\.dot|\.gv)?$")
_NEURON_ID = re.compile(r"^(\d+)[_:/.](\d+)$")
STORE_BLOCK = 1000


# --- N2G's graph files (Graphviz DOT) --------------------------------------------------

_DOT_TOKEN = re.compile(r'\s+|//[^\n]*|/\*.*?\*/|"(?:[^"\\]|\\.)*"|<[^<>]*>|->|--|[{}\[\]=;,]|[^\s{}\[\]=;,"<>]+',
                        re.S)


def _dot_tokens(text: str, c: Checker) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _DOT_TOKEN.match(text, pos)
        if not m:
            raise c.fail(f"not Graphviz DOT at character {pos} (truncated?)", "graph")
        tok = m.group(0)
        if not (tok.isspace() or tok.startswith(("//", "/*"))):
            out.append(tok)
        pos = m.end()
    return out


def _unquote(tok: str) -> str:
    if tok.startswith('"') and tok.endswith('"') and len(tok) >= 2:
        return re.sub(r'\\(["\\])', r"\1", tok[1:-1])
    return tok


def _label_token(label: str) -> str:
    """The token an N2G node label shows: N2G writes ``json.dumps(token)`` without its quotes
    (unless the token holds a quote), and an all-blank token between single quotes."""
    if len(label) >= 3 and label[0] == label[-1] == "'" and set(label[1:-1]) == {" "}:
        return label[1:-1]
    if '"' in label:
        return label
    try:
        return json.loads(f'"{label}"')
    except ValueError:
        return label


@dataclass
class _Cluster:
    name: str
    nodes: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def parse_dot(text: str, c: Checker) -> tuple[list[_Cluster], list[tuple[str, str, dict[str, str]]]]:
    """An N2G graph file's clusters (with their nodes and attributes) and edges."""
    toks = _dot_tokens(text, c)
    i = 0

    def peek(k: int = 0) -> str | None:
        return toks[i + k] if i + k < len(toks) else None

    def take(want: str | None = None) -> str:
        nonlocal i
        tok = peek()
        if tok is None:
            raise c.fail(f"ends early (truncated?): expected {want or 'more'}", "graph")
        if want is not None and tok != want:
            raise c.fail(f"expected {want!r}, found {tok!r}", "graph")
        i += 1
        return tok

    def attrs() -> dict[str, str]:
        out: dict[str, str] = {}
        while peek() == "[":
            take("[")
            while peek() != "]":
                k = _unquote(take())
                take("=")
                out[k] = _unquote(take())
                if peek() in (",", ";"):
                    take()
            take("]")
        return out

    clusters: list[_Cluster] = []
    edges: list[tuple[str, str, dict[str, str]]] = []

    def body(cluster: _Cluster | None) -> None:
        while True:
            tok = peek()
            if tok is None:
                raise c.fail("ends early (truncated?): a '}' is missing", "graph")
            if tok == "}":
                take("}")
                return
            if tok == ";":
                take(";")
            elif tok in ("graph", "node", "edge") and peek(1) == "[":
                take()
                attrs()
            elif tok == "subgraph":
                take()
                name = _unquote(take()) if peek() != "{" else ""
                take("{")
                sub = _Cluster(name)
                clusters.append(sub)
                body(sub)
            elif peek(1) == "=":
                take()
                take("=")
                take()
            elif peek(1) == "->":
                a = _unquote(take())
                take("->")
                b = _unquote(take())
                edges.append((a, b, attrs()))
            else:
                node = _unquote(take())
                if node in ("{", "[", "]", "=", "->"):
                    raise c.fail(f"unexpected {node!r}", "graph")
                a = attrs()
                if cluster is None:
                    raise c.fail(f"node {node} is outside every depth cluster", "graph")
                cluster.nodes.append((node, a))

    if peek() == "strict":
        take()
    if take() != "digraph":
        raise c.fail("not an N2G graph: expected 'digraph {'", "graph")
    if peek() != "{":
        take()
    take("{")
    body(None)
    if peek() is not None:
        raise c.fail(f"text after the graph's closing '}}': {peek()!r}", "graph")
    return clusters, edges


def n2g_page_from_dot(text: str, c: Checker) -> tuple[dict, set[int]]:
    """An N2G graph file as DeepDecipher's neuron2graph page ``{graph: {subgraph_indices,
    graph: [{token, required, importance}]}, graphviz}``, and the indices of end nodes."""
    clusters, edges = parse_dot(text, c)
    numbered = []
    for cl in clusters:
        m = re.fullmatch(r"cluster_(\d+)", cl.name)
        if not m:
            raise c.fail(f"subgraph {cl.name!r}: N2G names its depth clusters cluster_N", "graph")
        numbered.append((int(m.group(1)), cl))
    numbered.sort(key=lambda x: -x[0])  # cluster_{max_depth - depth}: the root's first
    ordered = [cl for _, cl in numbered]
    if ordered and ordered[0].nodes:  # no empty root cluster: keep depth 1 = activating tokens
        ordered.insert(0, _Cluster("root"))
    index: dict[str, int] = {}
    nodes: list[dict] = []
    ends: set[int] = set()
    bounds = [0]
    for cl in ordered:
        for node_id, a in cl.nodes:
            where = f"graph node {node_id}"
            if node_id in index:
                raise c.fail("appears twice", where)
            if "label" not in a:
                raise c.fail("has no label", where)
            color = a.get("fillcolor", "")
            if not re.fullmatch(r"#[0-9a-fA-F]{6}", color):
                raise c.fail(f"fillcolor {color!r} is no #rrggbb colour (N2G's importance)", where)
            index[node_id] = len(nodes)
            if a.get("penwidth") == "7":
                ends.add(len(nodes))
            nodes.append({"token": _label_token(a["label"]), "required": [],
                          "importance": 1.0 - int(color[3:5], 16) / 255.0})
        bounds.append(len(nodes))
    for a, b, attr in edges:
        for end in (a, b):
            if end not in index:
                raise c.fail(f"edge {a} -> {b} names node {end}, which no cluster holds", "graph")
        if attr.get("dir", "back") != "back":
            raise c.fail(f"edge {a} -> {b}: N2G draws every edge with dir=back", "graph")
        nodes[index[a]]["required"].append(index[b])
    return {"graph": {"subgraph_indices": bounds, "graph": nodes}, "graphviz": text}, ends


def _n2g_norm(token: str) -> str:
    """N2G's token normalisation (``NeuronModel.normalise``): title case lowered, then a token
    with letters stripped of surrounding blanks (one-character tokens stay as they are)."""
    t = token.lower() if token.istitle() and len(token) > 1 else token
    return t.strip() if len(t) > 1 and any(ch.isalpha() for ch in t) else t


def _graph_unit(model: str, path: Path, layer: int, neuron: int,
                matches: dict[str, list[tuple[int, str]]] | None) -> Callable[[], Plan]:
    def parse() -> Plan:
        c = Checker(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(path, f"cannot read: {exc}") from exc
        if not text.strip():
            raise c.fail("empty file: expected N2G's Graphviz graph", "graph")
        page, ends = n2g_page_from_dot(text, c)
        plan = Plan(model)
        add_n2g_page(plan, c, page, layer, neuron)
        for i, row in enumerate(plan.rows.get("upsert_n2g_pattern_nodes", [])):
            row["is_end"] = i in ends
            for tid, ttext in (matches or {}).get(row["token"], []):
                plan.add("upsert_pattern_matches", {"pattern": row["key"], "token": plan.token(tid, ttext),
                                                    "role": row["role"]})
        return plan
    return parse


# --- neuron_store.json ---------------------------------------------------------------------

@lru_cache(maxsize=4)
def load_store(path: Path) -> dict[tuple[int, int], dict[str, frozenset[str]]]:
    """``neuron_store.json`` inverted: (layer, neuron) -> {"activating": tokens, "important": tokens}."""
    c = Checker(path)
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise c.fail("expected an object {activating, important}", "activating")
    sets: dict[tuple[int, int], dict[str, set[str]]] = defaultdict(lambda: {"activating": set(), "important": set()})
    for role in ("activating", "important"):
        by_token = c.obj(doc, role)
        for token, ids in by_token.items():
            where = f"{role}[{token!r}]"
            if not isinstance(ids, list):
                raise c.fail(f"expected a list of neuron ids 'layer_neuron', got {type(ids).__name__}", where)
            for k, nid in enumerate(ids):
                m = _NEURON_ID.match(nid) if isinstance(nid, str) else None
                if not m:
                    raise c.fail(f"expected a neuron id 'layer_neuron', got {nid!r}", f"{where}[{k}]")
                sets[(int(m.group(1)), int(m.group(2)))][role].add(token)
    return {k: {r: frozenset(v) for r, v in s.items()} for k, s in sorted(sets.items())}


def _store_unit(model: str, path: Path, keys: list[tuple[int, int]]) -> Callable[[], Plan]:
    def parse() -> Plan:
        sets = load_store(path)
        plan = Plan(model, origin=f"n2g:{path.name}")
        for layer, neuron in keys:
            s = sets[(layer, neuron)]
            plan.neuron(layer, neuron, n2g_activating_tokens=sorted(s["activating"]),
                        n2g_important_tokens=sorted(s["important"]), n2g_num_activating=len(s["activating"]),
                        n2g_num_important=len(s["important"]))
        return plan
    return parse


def similar_from_store(sets: dict[tuple[int, int], dict[str, frozenset[str]]], threshold: float,
                       max_shared: int) -> list[tuple[tuple[int, int], tuple[int, int], float]]:
    """Pairs of neurons whose role-tagged token sets have Jaccard similarity >= threshold.
    Candidates come from tokens shared by at most ``max_shared`` neurons; each candidate's
    similarity is exact.

        >>> similar_from_store({(0, 1): {"activating": frozenset({"a"}), "important": frozenset({"b"})},
        ...                     (0, 2): {"activating": frozenset({"a"}), "important": frozenset({"b", "c"})}}, 0.5, 10)
        [((0, 1), (0, 2), 0.6666666666666666)]
    """
    tagged = {k: {(r, t) for r, toks in s.items() for t in toks} for k, s in sets.items()}
    index: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for k, items in tagged.items():
        for item in items:
            index[item].append(k)
    candidates: set[tuple[tuple[int, int], tuple[int, int]]] = set()
    for neurons in index.values():
        if 1 < len(neurons) <= max_shared:
            neurons = sorted(neurons)
            candidates.update((a, b) for j, a in enumerate(neurons) for b in neurons[j + 1:])
    out = []
    for a, b in sorted(candidates):
        inter = len(tagged[a] & tagged[b])
        w = inter / (len(tagged[a]) + len(tagged[b]) - inter)
        if w >= threshold:
            out.append((a, b, w))
    return out


def _similar_unit(model: str, path: Path, threshold: float, max_shared: int) -> Callable[[], Plan]:
    def parse() -> Plan:
        plan = Plan(model)
        for (al, an), (bl, bn), w in similar_from_store(load_store(path), threshold, max_shared):
            plan.add("upsert_similar", {"src": plan.neuron(al, an), "dst": plan.neuron(bl, bn), "weight": w})
        return plan
    return parse


# --- activation_matrix-{model}.json --------------------------------------------------------

@lru_cache(maxsize=4)
def load_matrix(path: Path) -> list[list[float | None]]:
    c = Checker(path)
    doc = read_json(path)
    if not isinstance(doc, list) or not doc:
        raise c.fail("expected a list of layers, each a list of per-neuron max activations", "[0]")
    width = None
    out = []
    for layer, row in enumerate(doc):
        if not isinstance(row, list):
            raise c.fail(f"expected a list of numbers, got {type(row).__name__}", f"[{layer}]")
        if width is not None and len(row) != width:
            raise c.fail(f"{len(row)} neurons, but layer 0 has {width} (truncated?)", f"[{layer}]")
        width = len(row)
        out.append([finite(c.as_float(v, f"[{layer}][{n}]")) for n, v in enumerate(row)])
    if not width:
        raise c.fail("layers hold no neurons", "[0]")
    return out


def _matrix_unit(model: str, path: Path, layer: int) -> Callable[[], Plan]:
    def parse() -> Plan:
        plan = Plan(model, origin=f"n2g:{path.name}")
        for n, v in enumerate(load_matrix(path)[layer]):
            plan.neuron(layer, n, max_activation=v)
        return plan
    return parse


# --- inputs -----------------------------------------------------------------------------

@dataclass
class _Inputs:
    matrix: Path | None = None
    store: Path | None = None
    graphs: list[tuple[int, int, Path]] = field(default_factory=list)


def _graph_files(folder: Path) -> list[tuple[int, int, Path]]:
    out = []
    for base in (folder, folder / "graphs"):
        if not base.is_dir():
            continue
        for p in base.iterdir():
            m = _GRAPH.match(p.name)
            if m and p.is_file():
                out.append((int(m.group(1)), int(m.group(2)), p))
            elif m and p.is_dir() and (p / "graph").is_file():
                out.append((int(m.group(1)), int(m.group(2)), p / "graph"))
    return sorted(out)


def _is_model_folder(d: Path) -> bool:
    return d.is_dir() and ((d / STORE).is_file() or (d / "graphs").is_dir() or bool(_graph_files(d)))


def _collect(path: Path, model: str | None) -> dict[str, _Inputs]:
    """Inputs under ``path`` by model name."""
    found: dict[str, _Inputs] = defaultdict(_Inputs)

    def need_model(what: Path) -> str:
        name = model or (what.parent.name if canonical_name(what.parent.name) else None)
        if not name:
            raise InputFileError(what, "which model is this? N2G's file does not say and its folder is no "
                                 "well-known model name: give --model", "model")
        return name

    if path.is_file():
        m = _MATRIX.match(path.name)
        if m:
            found[model or m.group(1)].matrix = path
        elif path.name == STORE:
            found[need_model(path)].store = path
        elif _GRAPH.match(path.name) or (path.name == "graph" and _GRAPH.match(path.parent.name)):
            g = _GRAPH.match(path.name) or _GRAPH.match(path.parent.name)
            owner = path.parent if path.name != "graph" else path.parent.parent
            name = model or (owner.parent.name if owner.name == "graphs" else None)
            if not name or not (model or canonical_name(name)):
                raise InputFileError(path, "which model is this? give --model", "model")
            found[name].graphs.append((int(g.group(1)), int(g.group(2)), path))
        else:
            raise InputFileError(path, "not an N2G output: expected neuron_store.json, a graph file "
                                 "{layer}_{neuron} or activation_matrix-{model}.json")
        return dict(found)
    if not path.is_dir():
        raise InputFileError(path, "no such file or folder")

    def add_folder(folder: Path, name: str) -> None:
        if (folder / STORE).is_file():
            found[name].store = folder / STORE
        found[name].graphs.extend(_graph_files(folder))
        # the older layout: neuron_graphs/{model}/{folder_name}/{layer}_{neuron}/graph
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "graphs"
                          and not _GRAPH.match(p.name) and not (p / STORE).is_file()):
            found[name].graphs.extend(_graph_files(sub))

    def walk(folder: Path, depth: int) -> None:
        for f in sorted(folder.glob("activation_matrix-*.json")):
            m = _MATRIX.match(f.name)
            if m:
                found[m.group(1)].matrix = f
        if _is_model_folder(folder):
            add_folder(folder, model if folder == path and model else folder.name)
        elif depth < 2:  # N2G's checkout: data/activation_matrix-*.json, output/{model}/
            for d in sorted(p for p in folder.iterdir() if p.is_dir()):
                walk(d, depth + 1)

    walk(path, 0)
    found = {k: v for k, v in found.items() if v.matrix or v.store or v.graphs}
    if not found:
        raise InputFileError(path, "no N2G outputs (neuron_store.json, graphs/{layer}_{neuron}, "
                             "activation_matrix-{model}.json) here or in sub-folders (one model each)")
    if model and len(found) > 1:
        raise InputFileError(path, f"holds N2G outputs of {len(found)} models ({', '.join(sorted(found))}), "
                             "each imported as its own: drop --model, or import one", "model")
    return found


def plan_model(name: str, inputs: _Inputs, *, model_info: Any = None, vocab: Any = None,
               similar_threshold: float = 0.5, similar_max_shared: int = 500,
               **_: Any) -> tuple[ImportModel, Callable]:
    try:
        check_model_name(name)
    except InvalidKey:
        raise InputFileError(inputs.matrix or inputs.store or "--model",
                             f"cannot use {name!r} as a model name: give --model", "model") from None
    im = ImportModel(name, "n2g")
    explicit = parse_model_info(model_info)
    im.update(explicit)
    if inputs.matrix is not None:
        rows = load_matrix(inputs.matrix)
        shape = (len(rows), len(rows[0]))
        if im.n_layers is not None and im.d_mlp is not None and shape != (im.n_layers, im.d_mlp):
            raise InputFileError(inputs.matrix, f"the matrix is {shape[0]} layers x {shape[1]} neurons but {name} "
                                 f"has {im.n_layers} x {im.d_mlp} ({im.sizes_from}): another model's matrix?",
                                 "[0]")
        im.update({"n_layers": shape[0], "d_mlp": shape[1]}, "the activation matrix's shape")
    store = load_store(inputs.store) if inputs.store is not None else {}
    texts = vocab_texts(vocab)
    matches: dict[str, list[tuple[int, str]]] | None = None
    if texts:
        matches = defaultdict(list)
        for tid, text in sorted(texts.items()):
            matches[_n2g_norm(text)].append((tid, text))

    def units():
        if inputs.matrix is not None:
            for layer in range(len(load_matrix(inputs.matrix))):
                # True: the matrix was validated whole on load
                yield f"{inputs.matrix}:{layer}", _matrix_unit(name, inputs.matrix, layer), True
        keys = list(store)
        for lo in range(0, len(keys), STORE_BLOCK):
            yield f"{inputs.store}:{lo}", _store_unit(name, inputs.store, keys[lo:lo + STORE_BLOCK])
        if len(keys) > 1:
            yield f"{inputs.store}:similar", _similar_unit(name, inputs.store, similar_threshold, similar_max_shared)
        for layer, neuron, f in inputs.graphs:
            yield str(f), _graph_unit(name, f, layer, neuron, matches)
    return im, units


@importer("n2g", "neuron2graph")
async def import_n2g(store: Any, path: str | Path, *, model: str | None = None, model_info: Any = None,
                     progress: bool = True, **options: Any) -> dict[str, Any]:
    """Import N2G's neuron store, saved graphs and activation matrices (see the module doc).
    Every model found is validated before any is written.

        await import_n2g(store, "output/gpt2-small", vocab="gpt2-vocab.json")
    """
    try:
        found = _collect(Path(path), model)
        plans = [plan_model(name, inputs, model_info=model_info, **options) for name, inputs in sorted(found.items())]
        checked = [validate_units(im, units, progress=progress) for im, units in plans]
        summaries = [await run_import(store, im, units, progress=progress, validated=listed)
                     for (im, units), listed in zip(plans, checked)]
    finally:
        load_store.cache_clear()
        load_matrix.cache_clear()
    if len(summaries) == 1:
        return summaries[0]
    return {"source": "n2g", "models": summaries, "model": ", ".join(s["model"] for s in summaries),
            **{k: sum(s[k] for s in summaries) for k in ("units", "neurons", "edges")},
            "warnings": [w for s in summaries for w in s["warnings"]],
            **({"status": "unchanged" if all(s["status"] == "unchanged" for s in summaries) else "written"}
               if all("status" in s for s in summaries) else {})}

