"""Import Universal Neurons data (Gurnee et al. 2024, ``wesg52/universal-neurons``).

Inputs (PATH is one file, or a folder holding them, directly or under ``weights/``):

* neuron statistics CSVs: ``dataframes/neuron_dfs/{model}.csv``,
  ``dataframes/interpretable_neurons/{model}/*.csv``, ``summary_data/{model}/weights/neuron_stats.csv``.
  Their columns differ; :data:`COLUMN_ALIASES` maps every variant to one name
  (``input_weight_norm`` → ``w_in_norm``, ``weight_norm_penalty`` → ``l2_penalty``,
  ``neuron_ix`` → ``neuron``, a leading unnamed pandas index column is dropped). Every other
  column becomes a neuron property under its own name (numbers, booleans, strings).
* ``neuron_comps.pt`` (``weights.py``): for ``in_in``, ``in_out``, ``out_in``, ``out_out``,
  ``top_neuron_value/_ix`` and ``bottom_neuron_value/_ix`` of shape ``[n_layers, d_mlp, k]``;
  an index is flat over ``(layer, neuron)``: ``layer, neuron = divmod(ix, d_mlp)``. Each
  becomes ``COMPOSES {kind, weight = cosine, rank}`` from the neuron whose list it is to the
  listed neuron (``kind`` names the source's vector first: ``in_out`` = cos(src W_in,
  dst W_out)); rank 0, 1, ... for top, -1, -2, ... for bottom. ``comp_mean/var/skew/kurt``
  ``[n_layers, d_mlp]`` become neuron props ``{kind}_comp_mean`` etc.
* ``vocab_comps.pt``: ``E_in`` (W_E·W_in) → ``TOKEN_EFFECT {kind: "input"}``, ``U_out``
  (W_out·W_U) → ``TOKEN_EFFECT {kind: "output"}`` with top/bottom ``*_vocab_value/_ix``;
  ``U_in`` and ``E_out`` have no edge kind in the graph model and give only their moments
  (``{kind}_comp_mean`` ...). Tokens are ``Token {id}`` nodes with ``text`` from ``vocab=``
  (a JSON list id→text or object text→id) when given, else ``text = null``.
* ``{k,q,v,o}_comps.pt``: ``[n_layers, d_mlp, n_layers, n_heads]`` composition scores. For
  each neuron the ``head_k`` (default 10) strongest causal ones become ``HEAD_COMPOSES``:
  K/Q/V neuron → head of a later layer (the head reads the neuron's output), O head →
  neuron of the same or a later layer (the neuron reads the head's output).

Loading ``.pt`` needs torch (imported only then). The model (``source`` =
"universal-neurons") is ``--model``, else the folder the data sits in (upstream keeps one
folder per model: ``interpretable_neurons/{model}/``, ``summary_data/{model}/weights/``), else
a file named for a well-known model (``neuron_dfs/{model}.csv``); nothing else is guessed
from a file's name: without ``--model`` such a file is refused. A folder of model folders
(``dataframes/interpretable_neurons``) imports each as its own model. Sizes come from the
tensors' shapes, ``model_info``, or the table of well-known models; otherwise only lower
bounds are stored (see :class:`loaders.importing.ImportModel`).

Each CSV's values are also kept per file in the neuron's ``sources`` / ``source_values``
(two files disagreeing on a neuron both stay visible). Rows of a label file
(``prediction_neurons.csv``: ``feature``, ``is_surpress``, one row per neuron and feature)
become the neuron's ``labels`` (``feature:all_caps``).

    summary = await import_universal_neurons(store, "stanford-gpt2-small-a.universal.csv")
"""

from __future__ import annotations

import csv
import re
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
    run_import,
    validate_units,
    vocab_texts,
)
from .model_sizes import canonical_name
from .registry import importer

COLUMN_ALIASES: dict[str, str | None] = {
    "": None, "Unnamed: 0": None, "index": None,          # pandas' saved index column
    "neuron_ix": "neuron", "neuron_index": "neuron", "layer_ix": "layer",
    "input_weight_norm": "w_in_norm", "output_weight_norm": "w_out_norm",
    "weight_norm_penalty": "l2_penalty", "kurtosis": "kurt", "skewness": "skew", "variance": "var",
}
# Columns that make a row one label of its neuron (rows may repeat a neuron, one per label).
LABEL_COLUMNS = ("feature",)
NEURON_COMPS = ("in_in", "in_out", "out_in", "out_out")
VOCAB_EDGES = {"E_in": "input", "U_out": "output"}
VOCAB_COMPS = ("E_in", "U_in", "E_out", "U_out")
HEAD_FILES = {"k": "K", "q": "Q", "v": "V", "o": "O"}
KNOWN_PT = frozenset({"neuron_comps.pt", "vocab_comps.pt", *(f"{x}_comps.pt" for x in HEAD_FILES)})
NEURON_BLOCK = 256
_PROP = re.compile(r"[^A-Za-z0-9_]")


# --- CSV ------------------------------------------------------------------------------

def _value(text: str) -> Any:
    t = text.strip()
    if t == "" or t.lower() in ("nan", "none", "null"):
        return None
    if t in ("True", "true", "False", "false"):
        return t.lower() == "true"
    try:
        return finite(float(t))
    except ValueError:
        return t


def read_stats_csv(path: Path) -> list[tuple[int, int, dict[str, Any]]]:
    """Rows of a neuron statistics CSV as (layer, neuron, props), columns renamed by alias.

    A file with a label column (:data:`LABEL_COLUMNS`: upstream's ``prediction_neurons.csv``
    has ``feature`` and ``is_surpress``, one row per neuron *and* feature) may name a neuron
    on several rows: each row is one label of that neuron. Any other file naming a neuron
    twice is refused (which row's value would be the neuron's?)."""
    c = Checker(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(path, f"cannot read CSV: {exc}") from exc
    if not rows:
        raise InputFileError(path, "empty file: expected a header with layer and neuron", "layer")
    header = [COLUMN_ALIASES.get(h.strip(), _PROP.sub("_", h.strip())) for h in rows[0]]
    for need in ("layer", "neuron"):
        if need not in header:
            raise InputFileError(path, f"no {need!r} column (header: {', '.join(rows[0])})", need)
    li, ni = header.index("layer"), header.index("neuron")
    out: list[tuple[int, int, dict[str, Any]]] = []
    seen: set[tuple[int, int]] = set()
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise InputFileError(path, f"line {line} has {len(row)} of {len(header)} columns (truncated?)",
                                 rows[0][min(len(row), len(header) - 1)])
        props: dict[str, Any] = {}
        for name, cell in zip(header, row):
            if name is None or name in ("layer", "neuron"):
                continue
            props[name] = (cell.strip() or None) if name in LABEL_COLUMNS else _value(cell)
        layer = c.as_int(_value(row[li]), f"layer (line {line})")
        neuron = c.as_int(_value(row[ni]), f"neuron (line {line})")
        if (layer, neuron) in seen and not any(h in LABEL_COLUMNS for h in header):
            raise InputFileError(path, f"line {line} repeats neuron {layer}/{neuron}, and the file has no label "
                                 f"column ({', '.join(LABEL_COLUMNS)}) that would make each row one label", "neuron")
        seen.add((layer, neuron))
        out.append((layer, neuron, props))
    return out


# --- .pt summaries --------------------------------------------------------------------

def _torch_load(path: Path) -> Any:
    try:
        import torch
    except ImportError as exc:  # the API install has no torch
        raise InputFileError(path, "reading .pt files needs torch (pip install 'neurograph[compute]')") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, unpickling refused
        raise InputFileError(path, f"not a readable torch file (truncated?): {type(exc).__name__}: {exc}") from exc


def _tensor(c: Checker, obj: Any, name: str, ndim: int, shape_prefix: tuple = ()):
    import torch

    t = obj.get(name) if isinstance(obj, dict) else None
    if t is None:
        raise c.fail("missing", name)
    if not isinstance(t, torch.Tensor):
        raise c.fail(f"expected a tensor, got {type(t).__name__}", name)
    if t.dim() != ndim or tuple(t.shape[: len(shape_prefix)]) != tuple(shape_prefix):
        want = "[" + ", ".join([str(s) for s in shape_prefix] + ["…"] * (ndim - len(shape_prefix))) + "]"
        raise c.fail(f"expected shape {want}, got {list(t.shape)}", name)
    return t


@lru_cache(maxsize=8)
def load_neuron_comps(path: Path) -> dict[str, dict[str, Any]]:
    """Validated ``neuron_comps.pt``: {kind: {top_value, top_ix, bottom_value, bottom_ix, moments}}."""
    data = _torch_load(path)
    c = Checker(path)
    if not isinstance(data, dict) or not set(NEURON_COMPS) & set(data):
        raise c.fail("expected a dict with in_in, in_out, out_in, out_out", "in_in")
    out: dict[str, dict[str, Any]] = {}
    shape = None
    for kind in NEURON_COMPS:
        if kind not in data:
            continue
        d = data[kind]
        cc = Checker(f"{path} [{kind}]")
        tv = _tensor(cc, d, "top_neuron_value", 3)
        shape = shape or tuple(tv.shape[:2])
        n_layers, d_mlp = shape
        entry = {}
        for side in ("top", "bottom"):
            v = _tensor(cc, d, f"{side}_neuron_value", 3, shape).float()
            ix = _tensor(cc, d, f"{side}_neuron_ix", 3, shape).long()
            if v.shape != ix.shape:
                raise cc.fail(f"shape {list(ix.shape)} differs from {side}_neuron_value {list(v.shape)}",
                              f"{side}_neuron_ix")
            if ix.numel() and (int(ix.min()) < 0 or int(ix.max()) >= n_layers * d_mlp):
                raise cc.fail(f"indices must lie in [0, {n_layers * d_mlp})", f"{side}_neuron_ix")
            entry[side] = (v, ix)  # kept as tensors: lists of a full model take GBs
        entry["moments"] = _moments(cc, d, shape)
        out[kind] = entry
    out["_shape"] = shape  # type: ignore[assignment]
    return out


def _moments(c: Checker, d: dict, shape: tuple) -> dict[str, list]:
    out = {}
    for m in ("mean", "var", "skew", "kurt"):
        if f"comp_{m}" in d:
            out[m] = _tensor(c, d, f"comp_{m}", 2, shape).float()
    return out


@lru_cache(maxsize=8)
def load_vocab_comps(path: Path) -> dict[str, Any]:
    data = _torch_load(path)
    c = Checker(path)
    if not isinstance(data, dict) or not set(VOCAB_COMPS) & set(data):
        raise c.fail("expected a dict with E_in, U_in, E_out, U_out", "E_in")
    out: dict[str, Any] = {}
    shape = None
    for kind in VOCAB_COMPS:
        if kind not in data:
            continue
        d = data[kind]
        cc = Checker(f"{path} [{kind}]")
        shape = shape or tuple(_tensor(cc, d, "top_vocab_value", 3).shape[:2])
        entry: dict[str, Any] = {"moments": _moments(cc, d, shape)}
        if kind in VOCAB_EDGES:
            for side in ("top", "bottom"):
                v = _tensor(cc, d, f"{side}_vocab_value", 3, shape).float()
                ix = _tensor(cc, d, f"{side}_vocab_ix", 3, shape).long()
                if v.shape != ix.shape:
                    raise cc.fail(f"shape {list(ix.shape)} differs from {side}_vocab_value", f"{side}_vocab_ix")
                if ix.numel() and int(ix.min()) < 0:
                    raise cc.fail("token ids must be >= 0", f"{side}_vocab_ix")
                entry[side] = (v, ix)  # kept as tensors: lists of a full model take GBs
        out[kind] = entry
    out["_shape"] = shape
    return out


@lru_cache(maxsize=8)
def load_head_comps(path: Path) -> Any:
    import torch

    t = _torch_load(path)
    c = Checker(path)
    if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[0] != t.shape[2]:
        got = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise c.fail(f"expected a tensor [n_layers, d_mlp, n_layers, n_heads], got {got}", path.name)
    return t.float()


# --- units ----------------------------------------------------------------------------

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def origin_of(path: Path) -> str:
    """How provenance names a file: ``universal-neurons:{file name}`` (a neuron belongs to one
    model, and upstream names every file of a model differently; a file fetched by URL is
    named as the same file on disk)."""
    return f"universal-neurons:{path.name}"


def _csv_unit(model: str, path: Path) -> Callable[[], Plan]:
    """A statistics CSV: each column a neuron property (kept per file in the neuron's sources).
    A label file: each row adds ``{column}:{value}`` to the neuron's labels; its numbers are
    neuron properties as in any statistics CSV, its other values (the label, ``is_surpress``)
    are kept per row under the file in the neuron's sources (they describe the neuron *and*
    that label), e.g. ``{"feature": ["is_year", "all_caps"], "is_surpress": [true, false]}``."""
    def parse() -> Plan:
        plan = Plan(model, origin=origin_of(path))
        for layer, neuron, props in read_stats_csv(path):
            labels = [c for c in LABEL_COLUMNS if c in props]
            if not labels:
                plan.neuron(layer, neuron, **props)
                continue
            # numbers are the neuron's statistics; the label and its flags (is_surpress) belong to the row
            key = plan.neuron(layer, neuron, **{k: v for k, v in props.items() if _is_number(v)})
            plan.label(key, *(f"{c}:{props[c]}" for c in labels if props[c] is not None))
            plan.record(key, **{k: v for k, v in props.items() if not _is_number(v)})
        return plan
    return parse


def _neuron_comps_unit(model: str, path: Path, layer: int, lo: int, hi: int, k: int | None) -> Callable[[], Plan]:
    def parse() -> Plan:
        comps = load_neuron_comps(path)
        n_layers, d_mlp = comps["_shape"]
        plan = Plan(model)
        for kind in NEURON_COMPS:
            if kind not in comps:
                continue
            entry = comps[kind]
            moments = {m: v[layer, lo:hi].tolist() for m, v in entry["moments"].items()}
            sides = {side: (entry[side][0][layer, lo:hi].tolist(), entry[side][1][layer, lo:hi].tolist())
                     for side in ("top", "bottom")}
            for j, n in enumerate(range(lo, hi)):
                src = plan.neuron(layer, n, **{f"{kind}_comp_{m}": finite(v[j]) for m, v in moments.items()})
                for side in ("top", "bottom"):
                    vals, ix = sides[side][0][j], sides[side][1][j]
                    for i in range(len(vals) if k is None else min(k, len(vals))):
                        dl, dn = divmod(ix[i], d_mlp)
                        plan.add("upsert_composes", {"src": src, "dst": plan.neuron(dl, dn), "kind": kind,
                                                     "weight": vals[i], "rank": i if side == "top" else -(i + 1)})
        return plan
    return parse


def _vocab_comps_unit(model: str, path: Path, layer: int, lo: int, hi: int, k: int | None,
                      texts: dict[int, str] | None) -> Callable[[], Plan]:
    def parse() -> Plan:
        comps = load_vocab_comps(path)
        plan = Plan(model)
        for kind in VOCAB_COMPS:
            if kind not in comps:
                continue
            entry = comps[kind]
            moments = {m: v[layer, lo:hi].tolist() for m, v in entry["moments"].items()}
            sides = {side: (entry[side][0][layer, lo:hi].tolist(), entry[side][1][layer, lo:hi].tolist())
                     for side in ("top", "bottom") if side in entry}
            for j, n in enumerate(range(lo, hi)):
                nk = plan.neuron(layer, n, **{f"{kind.lower()}_comp_{m}": finite(v[j]) for m, v in moments.items()})
                if kind not in VOCAB_EDGES:
                    continue
                for side in ("top", "bottom"):
                    vals, ix = sides[side][0][j], sides[side][1][j]
                    for i in range(len(vals) if k is None else min(k, len(vals))):
                        tk = plan.token(ix[i], (texts or {}).get(ix[i]))
                        plan.add("upsert_token_effects", {
                            "neuron": nk, "token": tk, "kind": VOCAB_EDGES[kind], "weight": vals[i],
                            "rank": i if side == "top" else -(i + 1), "count": None})
        return plan
    return parse


def _head_unit(model: str, path: Path, kind: str, layer: int, lo: int, hi: int,
               head_k: int | None) -> Callable[[], Plan]:
    def parse() -> Plan:
        t = load_head_comps(path)
        n_layers, _, _, n_heads = t.shape
        plan = Plan(model)
        # K/Q/V: a later head reads the neuron's output; O: the neuron reads an earlier head's output.
        heads = [(al, h) for al in range(n_layers) for h in range(n_heads)
                 if (al > layer if kind != "O" else al <= layer)]
        if not heads:
            for n in range(lo, hi):
                plan.neuron(layer, n)
            return plan
        rows = t[layer, lo:hi].reshape(hi - lo, n_layers * n_heads)[:, [al * n_heads + h for al, h in heads]]
        kk = len(heads) if head_k is None else min(head_k, len(heads))
        vals, idx = rows.topk(kk, dim=1)
        vals, idx = vals.tolist(), idx.tolist()
        for row, n in enumerate(range(lo, hi)):
            nk = plan.neuron(layer, n)
            for rank, (v, j) in enumerate(zip(vals[row], idx[row])):
                hk = plan.head(*heads[j])
                plan.add("upsert_neuron_to_head" if kind != "O" else "upsert_head_to_neuron",
                         {"neuron": nk, "head": hk, "kind": kind, "weight": finite(v), "rank": rank})
        return plan
    return parse


def _find(path: Path) -> tuple[list[Path], dict[str, Path]]:
    if path.is_file():
        files = [path]
    else:
        files = sorted([*path.glob("*"), *(path / "weights").glob("*")])
    csvs = [f for f in files if f.suffix == ".csv" and f.is_file()]
    pts = {f.name: f for f in files if f.suffix == ".pt" and f.is_file()}
    return csvs, pts


def _has_files(path: Path) -> bool:
    csvs, pts = _find(path)
    return bool(csvs or set(pts) & KNOWN_PT)


def model_folders(path: Path) -> list[Path]:
    """Sub-folders of ``path`` holding Universal Neurons files, one model each (upstream's
    ``dataframes/interpretable_neurons/{model}/``, ``summary_data/{model}/weights/``)."""
    if not path.is_dir() or _has_files(path):
        return []
    return sorted(d for d in path.iterdir() if d.is_dir() and _has_files(d))


def model_from_path(path: Path) -> str | None:
    """The model a path names, never guessed from a file's own name unless that name is a
    well-known model: a folder is its model (``…/stanford-gpt2-small-a/`` or its ``weights/``);
    a file belongs to its folder's model when the folder is a well-known model name
    (``…/stanford-gpt2-small-a/high_excess_correlation.csv``) or the file is in upstream's
    ``summary_data/{model}/weights/``, or is named for a well-known
    model (``neuron_dfs/pythia-160m.csv``, ``stanford-gpt2-small-a.universal.csv``)."""
    is_file = path.is_file() or path.suffix in (".csv", ".pt")  # a URL's path is no local file
    folder = path.parent if is_file else path
    in_weights = folder.name == "weights"
    if in_weights:
        folder = folder.parent
    if not is_file:
        return folder.name or None
    if canonical_name(folder.name) or (in_weights and folder.name):  # upstream: summary_data/{model}/weights/
        return folder.name
    stem = path.name.split(".")[0]
    if path.suffix == ".csv" and canonical_name(stem):
        return stem
    return None


def plan_units(path: Path, *, model: str | None = None, model_info: Any = None, k: int | None = None,
               head_k: int | None = 10, vocab: Any = None, **_: Any) -> tuple[ImportModel, Callable]:
    explicit = parse_model_info(model_info)
    if not path.exists():
        raise InputFileError(path, "no such file or folder")
    csvs, pts = _find(path)
    known = KNOWN_PT
    if path.is_file() and not csvs and path.name not in known:
        raise InputFileError(path, "not a Universal Neurons file: expected a neuron statistics .csv, "
                             "neuron_comps.pt, vocab_comps.pt or {k,q,v,o}_comps.pt")
    if not csvs and not (set(pts) & known):
        raise InputFileError(path, "no Universal Neurons files (*.csv, neuron_comps.pt, vocab_comps.pt, "
                             "{k,q,v,o}_comps.pt) found, here or in sub-folders (one model each)")
    name = model or model_from_path(path)
    if not name:
        raise InputFileError(path, "which model is this? The file does not say and its folder is no "
                             "well-known model name: give --model", "model")
    try:
        check_model_name(name)
    except InvalidKey:
        raise InputFileError(path, f"cannot take a model name from {name!r}: give --model", "model") from None
    im = ImportModel(name, "universal-neurons")

    # Shapes of the tensors give exact sizes; they are read (and validated) once here.
    shapes: dict[Path, tuple[int, int]] = {}
    if "neuron_comps.pt" in pts:
        shapes[pts["neuron_comps.pt"]] = load_neuron_comps(pts["neuron_comps.pt"])["_shape"]
    if "vocab_comps.pt" in pts:
        shapes[pts["vocab_comps.pt"]] = load_vocab_comps(pts["vocab_comps.pt"])["_shape"]
    heads = {x: pts[f"{x}_comps.pt"] for x in HEAD_FILES if f"{x}_comps.pt" in pts}
    for f in heads.values():
        t = load_head_comps(f)
        shapes[f] = (t.shape[0], t.shape[1])
        im.update({"n_heads": t.shape[3]}, "tensor shapes")
    n_layers = d_mlp = None
    for f, shape in shapes.items():
        if n_layers is not None and shape != (n_layers, d_mlp):
            raise InputFileError(f, f"shape {list(shape)} (n_layers, d_mlp) differs from the other files' "
                                 f"{[n_layers, d_mlp]}", f.name)
        n_layers, d_mlp = shape
    if n_layers is not None:
        im.update({"n_layers": n_layers, "d_mlp": d_mlp}, "tensor shapes")
    im.update(explicit)
    texts = vocab_texts(vocab)

    def units():
        for f in csvs:
            yield str(f), _csv_unit(im.name, f)
        # One unit per (layer, block of neurons): bounded memory and a progress bar that moves.
        for layer in range(n_layers or 0):
            for lo in range(0, d_mlp or 0, NEURON_BLOCK):
                hi = min(lo + NEURON_BLOCK, d_mlp)
                # True: the tensors were validated whole on load, so pass 1 need not parse these.
                if "neuron_comps.pt" in pts:
                    yield f"{pts['neuron_comps.pt']}:{layer}:{lo}", _neuron_comps_unit(
                        im.name, pts["neuron_comps.pt"], layer, lo, hi, k), True
                if "vocab_comps.pt" in pts:
                    yield f"{pts['vocab_comps.pt']}:{layer}:{lo}", _vocab_comps_unit(
                        im.name, pts["vocab_comps.pt"], layer, lo, hi, k, texts), True
                for x, f in heads.items():
                    yield f"{f}:{layer}:{lo}", _head_unit(im.name, f, HEAD_FILES[x], layer, lo, hi, head_k), True
    return im, units


@importer("universal-neurons")
async def import_universal_neurons(store: Any, path: str | Path, *, model: str | None = None,
                                   model_info: Any = None, progress: bool = True, **options: Any) -> dict[str, Any]:
    """Import Universal Neurons CSVs and weight summaries from a file, a folder, a folder of
    model folders (each imported as its own model, all validated before any is written) or a
    CSV URL.

        await import_universal_neurons(store, "summary_data/gpt2-small/weights", model="gpt2-small", k=5)
        await import_universal_neurons(store, "dataframes/interpretable_neurons")   # every model in it
    """
    text = str(path)
    if text.startswith(("http://", "https://")):
        from .fetch import Fetcher

        # Mirrored under its own file name: the name says what a .pt file holds.
        url_path = Path(text.split("?")[0])
        base, name = text.split("?")[0].rsplit("/", 1)
        async with Fetcher(options.pop("cache_dir", None)) as fetcher:
            path = await fetcher.mirror(base, [name], missing_ok=False) / name
        model = model or model_from_path(url_path)
        if model is None:
            raise InputFileError(text, "which model is this? The URL's folder is no well-known model name: "
                                 "give --model", "model")
    path = Path(path)
    try:
        folders = model_folders(path)
        if folders and model:
            raise InputFileError(path, f"holds {len(folders)} model folders ({', '.join(f.name for f in folders)}), "
                                 "each imported as its own model: drop --model, or import one folder", "model")
        plans = [plan_units(f, model_info=model_info, **options) for f in folders] or [
            plan_units(path, model=model, model_info=model_info, **options)]
        if len(plans) == 1:
            return await run_import(store, *plans[0], progress=progress)
        # Validate every model before writing any: a bad file in one folder writes nothing.
        checked = [(im, validate_units(im, units, progress=progress)) for im, units in plans]
        summaries = [await run_import(store, im, units, progress=progress, validated=listed)
                     for (im, units), (_, listed) in zip(plans, checked)]
        return {"source": "universal-neurons", "models": summaries,
                "model": ", ".join(s["model"] for s in summaries),
                **{k: sum(s[k] for s in summaries) for k in ("units", "neurons", "edges")},
                "warnings": [w for s in summaries for w in s["warnings"]],
            **({"status": "unchanged" if all(s["status"] == "unchanged" for s in summaries) else "written"}
               if all("status" in s for s in summaries) else {})}
    finally:
        # The tensors are only needed for one import; free them (files may change between runs).
        load_neuron_comps.cache_clear()
        load_vocab_comps.cache_clear()
        load_head_comps.cache_clear()
