"""Import Neuroscope neuron pages and DeepDecipher services into the graph.

Neuroscope itself publishes static HTML; DeepDecipher normalises its pages to JSON and
serves them with its own services at ``/api/{model}/{service}/{layer}/{neuron}``. We read
that JSON, either wrapped as DeepDecipher answers (``{"data": page, "metadata": {...}}``)
or bare (``page``).

Local layout (mirrors the DeepDecipher URL scheme; any part may be absent)::

    PATH/                                   the model folder (or PATH/{model}/ with --model)
      metadata.json                         model metadata: {name, num_layers, layer_size,
                                            activation_function, num_total_neurons, dataset, ...}
      neuroscope/{layer}/{neuron}.json      NeuroscopeNeuronPage {neuron_index{layer,neuron},
                                            texts[{min_range, max_range, min_activation,
                                            max_activation, data_index, max_activating_token_index,
                                            tokens[], activations[]}]}
      neuron_explainer/{layer}/{neuron}.json   {explanation, score}
      neuron2graph/{layer}/{neuron}.json    {graph{subgraph_indices[], graph[{token, required[],
                                            importance}]}, graphviz, similar[{layer, neuron, similarity}]}
      all/{layer}/{neuron}.json             /api/{model}/all/{l}/{n}: {service: {data} | {error} |
                                            {missing_data_types}}; services a server names its own
                                            way are recognised by what their data holds
      neuroscope.json                       model page /api/{model}/neuroscope: {important_neurons:
                                            [[{layer, neuron}, activation range], ...]}
      neuroscope/{layer}.json               layer page /api/{model}/neuroscope/{l}: {num_neurons,
                                            important_neurons: [...]}; each listed neuron gets
                                            ``neuroscope_importance``

Neuroscope's own static site is read too: ``PATH/{layer}/{neuron}.html`` (one model's
folder as neuroscope.io serves it), one ``.html`` page, or its URL; pages are parsed the
way DeepDecipher scrapes them (the ``<h4>Max Range/Min Range/Max Act/Min Act/Data Index/
Max Activating Token Index</h4>`` lines and the full text's CircuitsVis ``ColoredTokens``
JSON ``{tokens, values}``).

PATH may also be one JSON file of any of these kinds (the kind is recognised from its
fields; layer and neuron come from the page, from a ``.../{layer}/{neuron}.json`` path, or
from the ``layer=``/``neuron=`` options), or an ``http(s)://`` URL of one DeepDecipher
resource, fetched through :mod:`loaders.fetch` (cached on disk). With ``neurons=[(l, n), ...]``
and a base URL (``https://deepdecipher.org/api``) the three neuron services of each listed
neuron are mirrored into the cache in the layout above, then imported.

What lands in the graph (model name from ``--model``, the metadata, or the folder name):

* Model (``source`` = "neuroscope" or "deepdecipher"), its Layers, the Neurons seen.
* Each Neuroscope text: an ``Example`` keyed ``domain.example_key(model, data_index)``
  (shared by every neuron that activates on it) and ``ACTIVATES_ON {kind: "max", rank,
  activations, max_activation, min_activation, pivot = max_activating_token_index}``;
  the neuron gets ``neuroscope_max_range`` / ``neuroscope_min_range``.
* ``neuron_explainer``: an ``Explanation {source: "openai", text, score, ev_correlation_score}``
  (the same key as the OpenAI importer's, so both imports meet on one node).
* ``neuron2graph``: ``PatternNode``s (depth = subgraph index, role "activating" for the first
  two subgraphs as DeepDecipher colours them, else "important"; ``importance``),
  ``PATTERN_NEXT`` from the shallower to the deeper node of each ``required`` link,
  ``SIMILAR {weight: similarity}`` stored once per pair (src < dst), and the neuron's
  ``n2g_dot`` (the served graphviz text). Pattern tokens stay text: without a tokenizer
  no ``MATCHES`` edge to a Token id is drawn.

    summary = await import_neuroscope(store, "data/gelu-1l", model="gelu-1l")
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from neurograph.domain import example_key, explanation_key, pattern_key
from neurograph.errors import InputFileError

from .importing import (
    Checker,
    ImportModel,
    Plan,
    layer_neuron_files,
    parse_model_info,
    read_json,
    run_import,
    sorted_numeric,
)
from .registry import importer

SERVICES = ("neuroscope", "neuron_explainer", "neuron2graph")
_PATH_LN = re.compile(r"(?:^|/)(\d+)/(\d+)(?:\.json|\.html)?$")
# one service's answer in `all`: DeepDecipher names missing data `missing_data_objects` (older
# servers, and this project's before, `missing_data_types`); NeuroGraph adds `available`, `message`
_MISSING_KEYS = ("missing_data_objects", "missing_data_types")
_ANSWER_KEYS = {"data", "error", "metadata", "available", "message", *_MISSING_KEYS}
_PATH_L = re.compile(r"(?:^|/)(\d+)(?:\.json)?$")


# --- page parsers: validate one document, add its rows to a plan ----------------------

def unwrap(doc: Any, c: Checker) -> tuple[Any, dict | None]:
    """DeepDecipher wraps answers as {"data": ..., "metadata": ...}; return (data, metadata)."""
    for key in _MISSING_KEYS:
        if isinstance(doc, dict) and key in doc:
            raise c.fail(f"DeepDecipher has no data for {doc[key]}", key)
    if isinstance(doc, dict) and "data" in doc and set(doc) <= {"data", "metadata"}:
        meta = doc.get("metadata")
        return doc["data"], meta if isinstance(meta, dict) else None
    return doc, None


def parse_metadata(doc: Any, c: Checker) -> dict[str, Any]:
    """DeepDecipher model metadata (flat, or the older {metadata:{layers:[...]}} form)."""
    if not isinstance(doc, dict):
        raise c.fail(f"expected an object, got {type(doc).__name__}", "metadata")
    if isinstance(doc.get("metadata"), dict):
        doc = doc["metadata"]
    out: dict[str, Any] = {"name": c.str(doc, "name")}
    if doc.get("layers") is not None:
        layers = c.list(doc, "layers")
        out["n_layers"] = len(layers)
        if layers:
            out["d_mlp"] = c.int(layers[0], "num_neurons", "layers[0]")
    else:
        out["n_layers"] = c.int(doc, "num_layers")
        out["d_mlp"] = c.int(doc, "layer_size")
    out["act_fn"] = c.str(doc, "activation_function", required=False)
    out["dataset"] = c.str(doc, "dataset", required=False)
    return out


def add_neuroscope_page(plan: Plan, c: Checker, page: Any, layer: int | None, neuron: int | None,
                        source: str = "neuroscope") -> tuple[int, int]:
    if not isinstance(page, dict):
        raise c.fail("expected a Neuroscope neuron page object", "texts")
    idx = c.obj(page, "neuron_index", required=layer is None or neuron is None)
    if idx is not None:
        pl, pn = c.int(idx, "layer", "neuron_index"), c.int(idx, "neuron", "neuron_index")
        if layer is not None and (pl, pn) != (layer, neuron):
            raise c.fail(f"page is neuron {pl}/{pn} but its path says {layer}/{neuron}", "neuron_index")
        layer, neuron = pl, pn
    texts = c.list(page, "texts")
    nk = plan.neuron(layer, neuron)
    ranges: list[tuple[float, float]] = []
    for i, t in enumerate(texts):
        w = f"texts[{i}]"
        if not isinstance(t, dict):
            raise c.fail("expected an object", w)
        tokens = c.strs(t, "tokens", w)
        acts = c.floats(t, "activations", w)
        c.same_length(tokens, acts, "tokens", "activations", w)
        data_index = c.int(t, "data_index", w)
        pivot = c.int(t, "max_activating_token_index", w)
        if tokens and pivot >= len(tokens):
            raise c.fail(f"{pivot} is past the last of {len(tokens)} tokens", f"{w}.max_activating_token_index")
        ranges.append((c.float(t, "min_range", w), c.float(t, "max_range", w)))
        ex = plan.example(example_key(plan.model, data_index), tokens, data_index, source)
        plan.add("upsert_imported_activations", {
            "neuron": nk, "example": ex, "kind": "max", "rank": i, "activations": acts,
            "max_activation": c.float(t, "max_activation", w), "min_activation": c.float(t, "min_activation", w),
            "pivot": pivot, "source": source, "quantile": None})
    if ranges:
        plan.neuron(layer, neuron, neuroscope_min_range=min(r[0] for r in ranges),
                    neuroscope_max_range=max(r[1] for r in ranges))
    return layer, neuron


def add_explainer_page(plan: Plan, c: Checker, page: Any, layer: int, neuron: int) -> None:
    if not isinstance(page, dict):
        raise c.fail("expected a neuron_explainer object {explanation, score}", "explanation")
    text = c.str(page, "explanation")
    score = c.float(page, "score", required=False)
    nk = plan.neuron(layer, neuron)
    plan.add("upsert_explanations", {
        "key": explanation_key(plan.model, layer, neuron, "openai", text), "neuron": nk,
        "source": "openai", "text": text, "score": score,
        "scores": {} if score is None else {"ev_correlation_score": score}})


def add_n2g_page(plan: Plan, c: Checker, page: Any, layer: int, neuron: int) -> None:
    if not isinstance(page, dict):
        raise c.fail("expected a neuron2graph object {graph, graphviz, similar}", "graph")
    g = c.obj(page, "graph")
    bounds = c.ints(g, "subgraph_indices", "graph")
    nodes = c.list(g, "graph", "graph")
    if bounds and (bounds != sorted(bounds) or bounds[-1] != len(nodes)):
        raise c.fail(f"must rise to the node count {len(nodes)}, got {bounds}", "graph.subgraph_indices")
    nk = plan.neuron(layer, neuron, n2g_dot=c.str(page, "graphviz", required=False))
    depth_of = [0] * len(nodes)
    for d in range(len(bounds) - 1):
        for i in range(bounds[d], bounds[d + 1]):
            depth_of[i] = d
    parsed = []
    for i, node in enumerate(nodes):
        w = f"graph.graph[{i}]"
        if not isinstance(node, dict):
            raise c.fail("expected an object", w)
        token = c.get(node, "token", w)
        if not isinstance(token, str):
            raise c.fail("expected a string", f"{w}.token")
        required = c.ints(node, "required", w)
        for j in required:
            if j >= len(nodes):
                raise c.fail(f"node {j} does not exist ({len(nodes)} nodes)", f"{w}.required")
        parsed.append((token, required, c.float(node, "importance", w)))
    for i, (token, required, importance) in enumerate(parsed):
        role = "activating" if depth_of[i] <= 1 else "important"
        plan.add("upsert_n2g_pattern_nodes", {
            "key": pattern_key(plan.model, layer, neuron, i), "neuron": nk, "token": token,
            "depth": depth_of[i], "role": role, "importance": importance,
            "activation": importance if role == "activating" else None, "is_end": role == "activating"})
        for j in required:
            a, b = (i, j) if (depth_of[i], i) <= (depth_of[j], j) else (j, i)
            plan.add("upsert_pattern_edges", {"src": pattern_key(plan.model, layer, neuron, a),
                                              "dst": pattern_key(plan.model, layer, neuron, b)})
    for k, s in enumerate(c.list(page, "similar", required=False) or []):
        w = f"similar[{k}]"
        sl, sn = c.int(s, "layer", w), c.int(s, "neuron", w)
        weight = c.float(s, "similarity", w)
        if (sl, sn) == (layer, neuron):
            continue
        other = plan.neuron(sl, sn)
        src, dst = (nk, other) if (layer, neuron) < (sl, sn) else (other, nk)
        plan.add("upsert_similar", {"src": src, "dst": dst, "weight": weight})


def add_all_page(plan: Plan, c: Checker, doc: dict, layer: int, neuron: int, source: str) -> None:
    """``/api/{model}/all/{l}/{n}``: {service: {data: ...} | {error: ...} | {missing_data_types: ...}}.
    A DeepDecipher server names its services freely (``gpt4-explanations`` served by the
    neuron_explainer provider): a service is read by its name when it is one of
    :data:`SERVICES`, else by what its data holds. Errors, missing data, metadata and kinds
    this importer does not store (search, json) are skipped."""
    for service, body in doc.items():
        if not isinstance(body, dict) or "data" not in body:
            continue
        kind = service if service in SERVICES else detect_kind(body["data"])
        if kind not in SERVICES:
            continue
        sub = Checker(f"{c.path} [{service}]")
        add_service(plan, sub, kind, body["data"], layer, neuron, source)


def add_index_page(plan: Plan, c: Checker, page: Any, layer: int | None) -> None:
    """A Neuroscope layer page (``/api/{model}/neuroscope/{layer}``: ``{num_neurons,
    important_neurons: [[{layer, neuron}, activation range], ...]}``) or model page
    (``/api/{model}/neuroscope``: ``{important_neurons: [...]}``): DeepDecipher's ranking of
    neurons by activation range. Each listed neuron gets ``neuroscope_importance``."""
    entries = c.list(page, "important_neurons")
    for i, e in enumerate(entries):
        w = f"important_neurons[{i}]"
        if not isinstance(e, list) or len(e) != 2:
            raise c.fail("expected a pair [{layer, neuron}, value]", w)
        idx = e[0]
        if not isinstance(idx, dict):
            raise c.fail(f"expected an object {{layer, neuron}}, got {type(idx).__name__}", f"{w}[0]")
        nl, nn = c.int(idx, "layer", f"{w}[0]"), c.int(idx, "neuron", f"{w}[0]")
        if layer is not None and nl != layer:
            raise c.fail(f"neuron {nl}/{nn} is not in layer {layer}, the page's layer", f"{w}[0].layer")
        plan.neuron(nl, nn, neuroscope_importance=c.as_float(e[1], f"{w}[1]"))


def add_service(plan: Plan, c: Checker, service: str, page: Any, layer: int | None, neuron: int | None,
                source: str) -> None:
    if service == "neuroscope":
        add_neuroscope_page(plan, c, page, layer, neuron, source)
        return
    if service == "neuroscope_index":
        add_index_page(plan, c, page, layer)
        return
    if layer is None or neuron is None:
        raise c.fail(f"a {service} page does not name its neuron: give layer= and neuron= or a "
                     f"'{{layer}}/{{neuron}}.json' path", "layer")
    if service == "neuron_explainer":
        add_explainer_page(plan, c, page, layer, neuron)
    elif service == "neuron2graph":
        add_n2g_page(plan, c, page, layer, neuron)
    else:
        add_all_page(plan, c, page, layer, neuron, source)


_FLOAT = r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_HTML_NEURON = re.compile(r"<h2>Neuron (\d+) in Layer (\d+)\s*</h2>")
_HTML_FIELDS = {
    "max_range": re.compile(r"<h4>Max Range: <b>" + _FLOAT + r"</b>"),
    "min_range": re.compile(r"Min Range: <b>" + _FLOAT + r"</b></h4>"),
    "max_activation": re.compile(r"<h4>Max Act: <b>" + _FLOAT + r"</b>"),
    "min_activation": re.compile(r"Min Act: <b>" + _FLOAT + r"</b></h4>"),
    "data_index": re.compile(r"<h4>Data Index: <b>(\d+)</b>"),
    "max_activating_token_index": re.compile(r"<h4>Max Activating Token Index: <b>(\d+)</b></h4>"),
}
# The full text's render follows "Full Text #i"; its props object is one line of JSON.
_HTML_TOKENS = re.compile(r"ColoredTokens,\s*(\{.*\})\s*\)\s*</script>")


def parse_neuroscope_html(html: str, c: Checker) -> dict:
    """A neuroscope.io neuron page as the JSON page DeepDecipher would make of it."""
    m = _HTML_NEURON.search(html)
    if not m:
        raise c.fail("no '<h2>Neuron N in Layer L </h2>' header: not a Neuroscope page", "neuron_index")
    texts = []
    for section in html.split("<hr>")[1:]:
        if "Max Range:" not in section:
            continue  # the (optional) direct logit effect block
        i = len(texts)
        text: dict[str, Any] = {}
        for name, rx in _HTML_FIELDS.items():
            found = rx.findall(section)
            if len(found) != 1:
                raise c.fail(f"expected one value, found {len(found)}", f"texts[{i}].{name}")
            text[name] = float(found[0]) if "range" in name or "activation" in name else int(found[0])
        found = _HTML_TOKENS.findall(section.split("Full Text", 1)[-1])
        if len(found) != 1:
            raise c.fail("no full-text ColoredTokens block (truncated?)", f"texts[{i}].tokens")
        doc = read_json(f"{c.path} [texts[{i}]]", found[0])
        if not isinstance(doc, dict):
            raise c.fail("expected {tokens, values}", f"texts[{i}].tokens")
        text["tokens"], text["activations"] = doc.get("tokens"), doc.get("values")
        texts.append(text)
    return {"neuron_index": {"layer": int(m.group(2)), "neuron": int(m.group(1))}, "texts": texts}


def read_page(path: Path) -> Any:
    """A neuron file: JSON, or a Neuroscope .html page (returned as its JSON page)."""
    if path.suffix == ".html":
        try:
            html = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(path, f"cannot read: {exc}") from exc
        return parse_neuroscope_html(html, Checker(path))
    return read_json(path)


def detect_kind(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    if "texts" in doc:
        return "neuroscope"
    if "important_neurons" in doc:
        return "neuroscope_index"
    if "explanation" in doc:
        return "neuron_explainer"
    if "graph" in doc:
        return "neuron2graph"
    meta = doc.get("metadata")
    if doc and set(doc) <= set(SERVICES) | {"metadata", "neuron2graph-search", "json"} and (
            not isinstance(meta, dict) or set(meta) <= _ANSWER_KEYS):  # else: the older {metadata: {...}} form
        return "all"
    # an `all` answer of a server whose services have other names: every value is one
    # service's answer, {data} | {error} | {missing_data_types}
    if doc and all(isinstance(v, dict) and v and set(v) <= _ANSWER_KEYS for v in doc.values()):
        return "all"
    if "name" in doc and ("num_layers" in doc or "layers" in doc) or isinstance(doc.get("metadata"), dict):
        return "metadata"
    return None


# --- inputs: a folder tree or one file ------------------------------------------------

def _model_dir(path: Path, model: str | None) -> Path | None:
    marks = ("metadata.json", "all", "neuroscope.json", *SERVICES)
    if any((path / m).exists() for m in marks):
        return path
    if model and (path / model).is_dir():
        return path / model
    return None


def _layer_neuron_from(path: str, options: dict) -> tuple[int | None, int | None]:
    if options.get("layer") is not None and options.get("neuron") is not None:
        return int(options["layer"]), int(options["neuron"])
    m = _PATH_LN.search(str(path).replace("\\", "/").split("?")[0])
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


def plan_units(path: Path, *, model: str | None, source: str, model_info: Any = None,
               **options: Any) -> tuple[ImportModel, Callable]:
    """Validate the layout, read the model's metadata; return (model, units) for run_import."""
    explicit = parse_model_info(model_info)
    if path.is_dir():
        root = _model_dir(path, model)
        html = [] if root is not None else layer_neuron_files(path, ".html")
        if html:
            im = ImportModel(model or path.name, source)
            im.update(explicit)

            def html_units():
                for l, n, f in html:
                    yield str(f), _file_unit(im.name, "neuroscope", f, l, n, source)
            return im, html_units
        if root is None:
            raise InputFileError(path, "not a DeepDecipher layout: expected metadata.json or folders "
                                 f"{', '.join(SERVICES)} (see loaders/neuroscope.py)", None)
        meta: dict[str, Any] = {}
        if (root / "metadata.json").is_file():
            c = Checker(root / "metadata.json")
            meta = parse_metadata(unwrap(read_json(root / "metadata.json"), c)[0], c)
        name = model or meta.get("name") or root.name
        im = ImportModel(name, source)
        im.update(meta)
        im.update(explicit)
        files = [(svc, l, n, f) for svc in (*SERVICES, "all")
                 for l, n, f in layer_neuron_files(root / svc, ".json")]
        # Neuroscope's model page (neuroscope.json) and layer pages (neuroscope/{layer}.json)
        index = [("neuroscope_index", None, None, root / "neuroscope.json")] if (root / "neuroscope.json").is_file() else []
        index += [("neuroscope_index", l, None, f) for l, f in sorted_numeric(root / "neuroscope", ".json")]
        files = index + files
        if not files and not meta:
            raise InputFileError(root, "no neuron files found under " + ", ".join(SERVICES), None)

        def units():
            for svc, l, n, f in files:
                yield str(f), _file_unit(im.name, svc, f, l, n, source)
        return im, units

    if not path.is_file():
        raise InputFileError(path, "no such file or folder")
    c = Checker(path)
    doc, outer_meta = unwrap(read_page(path), c)
    kind = detect_kind(doc)
    if kind is None:
        raise InputFileError(path, "not a Neuroscope/DeepDecipher document: expected texts, explanation, "
                             "graph, model metadata or a DeepDecipher 'all' object", "texts")
    meta = {}
    if kind == "metadata":
        meta = parse_metadata(doc, c)
    elif outer_meta and "name" in outer_meta:
        meta = parse_metadata(outer_meta, Checker(f"{path} [metadata]"))
    elif kind == "all" and isinstance(doc.get("metadata"), dict) and isinstance(doc["metadata"].get("data"), dict):
        meta = parse_metadata(doc["metadata"]["data"], Checker(f"{path} [metadata]"))
    name = model or meta.get("name")
    if not name:
        raise InputFileError(path, "which model is this? give --model", "model")
    im = ImportModel(name, source)
    im.update(meta)
    im.update(explicit)
    layer, neuron = _layer_neuron_from(options.get("url") or str(path), options)
    if kind == "neuroscope_index":  # a layer page's layer: given, or its path's .../{layer}.json
        m = _PATH_L.search(str(options.get("url") or path).replace("\\", "/").split("?")[0])
        layer = options.get("layer") if options.get("layer") is not None else (
            int(m.group(1)) if m and isinstance(doc, dict) and "num_neurons" in doc else None)

    def units():
        if kind != "metadata":
            yield str(path), lambda: _parse_doc(im.name, kind, c, doc, layer, neuron, source)
    return im, units


def _parse_doc(model: str, kind: str, c: Checker, doc: Any, layer, neuron, source: str) -> Plan:
    plan = Plan(model)
    add_service(plan, c, kind, doc, layer, neuron, source)
    return plan


def _file_unit(model: str, service: str, f: Path, layer: int, neuron: int, source: str):
    def parse() -> Plan:
        c = Checker(f)
        doc, _ = unwrap(read_page(f), c)
        plan = Plan(model)
        add_service(plan, c, service, doc, layer, neuron, source)
        return plan
    return parse


@importer("neuroscope", source="neuroscope")
@importer("deepdecipher", source="deepdecipher")
async def import_neuroscope(store: Any, path: str | Path, *, model: str | None = None,
                            source: str = "neuroscope", model_info: Any = None, progress: bool = True,
                            **options: Any) -> dict[str, Any]:
    """Import Neuroscope pages / DeepDecipher services from a folder, a file or a URL.

        await import_neuroscope(store, "dd/gpt2-small", source="deepdecipher")
        await import_neuroscope(store, "https://deepdecipher.org/api", model="solu-1l",
                                neurons=[(0, 5)])
    """
    text = str(path)
    if text.startswith(("http://", "https://")):
        path = await _fetch(text, model=model, **options)
        if options.get("neurons") is None:
            options["url"] = text
    im, units = plan_units(Path(path), model=model, source=source, model_info=model_info, **options)
    return await run_import(store, im, units, progress=progress)


async def _fetch(url: str, *, model: str | None, neurons: Any = None, cache_dir: Any = None,
                 services: tuple[str, ...] = SERVICES, **_: Any) -> Path:
    from .fetch import Fetcher

    async with Fetcher(cache_dir) as fetcher:
        if neurons is None:
            return await fetcher.get_file(url, suffix=".html" if url.endswith(".html") else ".json")
        if not model:
            raise InputFileError(url, "fetching a list of neurons needs --model", "model")
        rel = [f"{model}/metadata"] + [f"{model}/{svc}/{l}/{n}" for l, n in neurons for svc in services]
        dest = await fetcher.mirror(url, rel, suffix=".json")
        return dest / model
