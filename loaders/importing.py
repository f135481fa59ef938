"""Shared machinery of the importers: validate everything, then write idempotently.

An importer turns its input into *units* (usually one per neuron: a page, a record, a
row); each unit is a :class:`Plan` of rows for the named write queries in ``cypher/``.
:func:`run_import` reads every unit once to validate it (nothing is written if any unit is
bad), writes the Model and its Layers, then reads the units again and writes them in
batches. Every write is a ``MERGE`` on a stable key, so re-running an interrupted import
completes it, and re-running a finished one changes nothing.

    async def units():                      # an importer's generator of plans
        plan = Plan()
        plan.neuron(3, 17, max_corr=0.8)
        yield plan
    info = ImportModel("gpt2", source="neuroscope")
    summary = await run_import(store, info, units)

The importers themselves register with :mod:`loaders.registry` (``import_source``); this
module never imports them.

Validation helpers (:class:`Checker`) raise :class:`neurograph.errors.InputFileError`
with the file and the dotted field path (``texts[3].activations``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

from neurograph.domain import (
    ModelInfo,
    check_model_name,
    head_key,
    layer_key,
    neuron_key,
    token_key,
)
from neurograph.errors import InputFileError, InvalidKey
from neurograph.progress import progress_bar

from .model_sizes import known_sizes

log = logging.getLogger("neurograph.import")

# Order in which a plan's rows are written: nodes before the edges that MATCH them.
WRITE_ORDER = (
    "upsert_neurons",
    "merge_neuron_sources",
    "merge_neuron_labels",
    "upsert_heads",
    "merge_imported_tokens",
    "upsert_examples",
    "upsert_imported_activations",
    "upsert_explanations",
    "upsert_n2g_pattern_nodes",
    "upsert_pattern_edges",
    "upsert_pattern_matches",
    "upsert_composes",
    "upsert_similar",
    "upsert_neuron_to_head",
    "upsert_head_to_neuron",
    "upsert_token_effects",
)


# --- validation ----------------------------------------------------------------------

class Checker:
    """Typed access to a parsed JSON document that names the file and field on failure.

        c = Checker(path)
        layer = c.int(page, "neuron_index.layer")
        acts = c.floats(text, "activations", where="texts[3]")
    """

    def __init__(self, path: object) -> None:
        self.path = path

    def fail(self, message: str, field: str | None = None) -> InputFileError:
        return InputFileError(self.path, message, field)

    def get(self, obj: Any, name: str, where: str = "", *, required: bool = True) -> Any:
        full = f"{where}.{name}" if where else name
        cur = obj
        for part in name.split("."):
            if not isinstance(cur, dict):
                raise self.fail(f"expected an object, got {_kind(cur)}", full)
            if part not in cur or cur[part] is None:
                if required:
                    raise self.fail("missing", full)
                return None
            cur = cur[part]
        return cur

    def obj(self, obj: Any, name: str, where: str = "", *, required: bool = True) -> dict | None:
        v = self.get(obj, name, where, required=required)
        if v is not None and not isinstance(v, dict):
            raise self.fail(f"expected an object, got {_kind(v)}", _join(where, name))
        return v

    def int(self, obj: Any, name: str, where: str = "", *, required: bool = True,
            minimum: int | None = 0) -> int | None:
        v = self.get(obj, name, where, required=required)
        if v is None:
            return None
        return self.as_int(v, _join(where, name), minimum=minimum)

    def as_int(self, v: Any, full: str, *, minimum: int | None = 0) -> int:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
            raise self.fail(f"expected an integer, got {_kind(v)}", full)
        v = int(v)
        if minimum is not None and v < minimum:
            raise self.fail(f"expected an integer >= {minimum}, got {v}", full)
        return v

    def float(self, obj: Any, name: str, where: str = "", *, required: bool = True) -> float | None:
        v = self.get(obj, name, where, required=required)
        if v is None:
            return None
        return self.as_float(v, _join(where, name))

    def as_float(self, v: Any, full: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(f"expected a number, got {_kind(v)}", full)
        return float(v)

    def str(self, obj: Any, name: str, where: str = "", *, required: bool = True) -> str | None:
        v = self.get(obj, name, where, required=required)
        if v is not None and not isinstance(v, str):
            raise self.fail(f"expected a string, got {_kind(v)}", _join(where, name))
        return v

    def list(self, obj: Any, name: str, where: str = "", *, required: bool = True) -> list | None:
        v = self.get(obj, name, where, required=required)
        if v is not None and not isinstance(v, list):
            raise self.fail(f"expected a list, got {_kind(v)}", _join(where, name))
        return v

    def strs(self, obj: Any, name: str, where: str = "", *, required: bool = True) -> list[str] | None:
        v = self.list(obj, name, where, required=required)
        if v is None:
            return None
        for i, s in enumerate(v):
            if not isinstance(s, str):
                raise self.fail(f"expected a string, got {_kind(s)}", f"{_join(where, name)}[{i}]")
        return v

    def floats(self, obj: Any, name: str, where: str = "", *, required: bool = True) -> list[float] | None:
        v = self.list(obj, name, where, required=required)
        if v is None:
            return None
        full = _join(where, name)
        return [self.as_float(x, f"{full}[{i}]") for i, x in enumerate(v)]

    def ints(self, obj: Any, name: str, where: str = "", *, required: bool = True) -> list[int] | None:
        v = self.list(obj, name, where, required=required)
        if v is None:
            return None
        full = _join(where, name)
        return [self.as_int(x, f"{full}[{i}]") for i, x in enumerate(v)]

    def same_length(self, a: list, b: list, name_a: str, name_b: str, where: str = "") -> None:
        if len(a) != len(b):
            raise self.fail(f"{len(a)} {name_a} but {len(b)} {name_b}", _join(where, name_b))


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(v), type(v).__name__)


def read_json(path: Path | str, text: str | None = None) -> Any:
    """Parse a JSON file; a truncated or malformed file names the file and position."""
    try:
        raw = Path(path).read_text(encoding="utf-8") if text is None else text
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read: {exc}") from exc
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"not valid JSON (truncated?): {exc.msg} at line {exc.lineno} "
                                   f"column {exc.colno}") from exc


def read_jsonl(path: Path | str) -> list[Any]:
    """Parse a JSON-lines file (blank lines skipped); errors name the line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read: {exc}") from exc
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputFileError(path, f"line {i} is not valid JSON (truncated?): {exc.msg}") from exc
    if not out:
        raise InputFileError(path, "empty file: expected at least one JSON line")
    return out


def vocab_texts(vocab: Any) -> dict[int, str] | None:
    """``vocab=``: token texts by id, from a JSON list (id → text) or object (text → id), a
    file of either, or None."""
    if vocab is None:
        return None
    data = vocab if isinstance(vocab, (dict, list)) else read_json(vocab)
    if isinstance(data, list):
        return {i: t for i, t in enumerate(data) if isinstance(t, str)}
    if isinstance(data, dict):
        return {int(i): t for t, i in data.items() if isinstance(i, int)}
    raise InputFileError(vocab, "expected a JSON list (id → text) or object (text → id)", "vocab")


def finite(v: float | None) -> float | None:
    """NaN/inf become null: the graph stores numbers users can compare."""
    if v is None or not math.isfinite(v):
        return None
    return v


# --- model, plan ----------------------------------------------------------------------

@dataclass
class ImportModel:
    """The Model node an import writes. Exact sizes come from the table of well-known models
    (:mod:`loaders.model_sizes`), a metadata file, tensor shapes or ``--model-info`` (each
    later one overwrites). A size the data only implies (the largest layer or neuron index
    seen) is never stored as the size: it becomes ``n_layers_at_least`` / ``d_mlp_at_least``
    / ``n_heads_at_least`` with ``sizes_inferred = true``, and the import warns.

        m = ImportModel("gpt2-xl", source="openai")      # sizes from the table: 48 x 6400
        m.see_neuron(3, 17)
    """

    name: str
    source: str
    n_layers: int | None = None
    d_mlp: int | None = None
    d_model: int | None = None
    n_heads: int | None = None
    d_vocab: int | None = None
    act_fn: str | None = None
    dataset: str | None = None
    seen_layers: int = 0
    seen_mlp: int = 0
    seen_heads: int = 0
    sizes_from: str | None = None

    def __post_init__(self) -> None:
        try:
            check_model_name(self.name)
        except InvalidKey as exc:
            raise InputFileError("--model", str(exc), "model") from exc
        known = known_sizes(self.name)
        if known:
            self.update(known, "the table of well-known models")

    def see_neuron(self, layer: int, index: int) -> None:
        self.seen_layers = max(self.seen_layers, layer + 1)
        self.seen_mlp = max(self.seen_mlp, index + 1)

    def see_head(self, layer: int, head: int) -> None:
        self.seen_layers = max(self.seen_layers, layer + 1)
        self.seen_heads = max(self.seen_heads, head + 1)

    def update(self, info: dict[str, Any], origin: str = "metadata or --model-info") -> None:
        """Take explicit values (a metadata file, --model-info); unknown keys are ignored."""
        for k in ("n_layers", "d_mlp", "d_model", "n_heads", "d_vocab", "act_fn", "dataset"):
            if info.get(k) is not None:
                setattr(self, k, info[k])
                if k in ("n_layers", "d_mlp"):
                    self.sizes_from = origin

    def inferred(self) -> dict[str, int]:
        """Lower bounds the data implies for the sizes nothing gave exactly."""
        out = {}
        for name, seen in (("n_layers", self.seen_layers), ("d_mlp", self.seen_mlp), ("n_heads", self.seen_heads)):
            if getattr(self, name) is None and seen:
                out[f"{name}_at_least"] = seen
        return out

    def warnings(self) -> list[str]:
        bounds = self.inferred()
        if not bounds:
            return []
        names = [k.removesuffix("_at_least") for k in bounds]
        what = ", ".join(f"{n} >= {v}" for n, v in zip(names, bounds.values()))
        return [f"model {self.name}: sizes unknown ({', '.join(names)}: no well-known model, metadata, tensor "
                f"shape or --model-info gives them); stored only as lower bounds from the largest indices seen "
                f"({what}), flagged sizes_inferred. Give --model-info '{','.join(n + '=N' for n in names)}' "
                f"for the true sizes."]

    def row(self) -> dict[str, Any]:
        info = ModelInfo(self.name, self.n_layers, self.d_mlp, d_model=self.d_model,  # type: ignore[arg-type]
                         n_heads=self.n_heads, d_vocab=self.d_vocab,
                         act_fn=self.act_fn, source=self.source, dataset=self.dataset)
        row = info.row()
        bounds = self.inferred()
        for name in ("n_layers", "d_mlp", "n_heads"):
            row[f"{name}_at_least"] = bounds.get(f"{name}_at_least")
        row["sizes_from"] = self.sizes_from
        return row


def parse_model_info(value: str | dict | Path | None) -> dict[str, Any]:
    """``--model-info``: a dict, a JSON file, a JSON object text, or ``n_layers=12,d_mlp=3072``."""
    if value is None:
        return {}
    if isinstance(value, dict):
        raw: dict[str, Any] = dict(value)
    elif isinstance(value, Path) or (isinstance(value, str) and Path(value).is_file()):
        raw = read_json(value)
        if not isinstance(raw, dict):
            raise InputFileError(value, "expected a JSON object", "model-info")
    elif isinstance(value, str) and value.strip().startswith("{"):
        raw = read_json("--model-info", value)
    else:
        raw = {}
        for part in str(value).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise InputFileError("--model-info", f"expected key=value, got {part!r}", "model-info")
            k, v = part.split("=", 1)
            raw[k.strip()] = v.strip()
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if k in ("n_layers", "d_mlp", "d_model", "n_heads", "d_vocab"):
            try:
                out[k] = int(v)
            except (TypeError, ValueError):
                raise InputFileError("--model-info", f"expected an integer, got {v!r}", k) from None
        elif k in ("act_fn", "dataset"):
            out[k] = str(v)
        else:
            raise InputFileError("--model-info", "unknown key (use n_layers, d_mlp, d_model, "
                                 "n_heads, d_vocab, act_fn, dataset)", k)
    return out


@dataclass
class Plan:
    """Rows for the named write queries, collected from one or more validated units.

        plan = Plan("gpt2")
        plan.neuron(0, 7, max_corr=0.8027)
        plan.add("upsert_composes", {"src": ..., "dst": ..., "kind": "in_in", "weight": 0.3, "rank": 0})

    With ``origin`` (e.g. ``"universal-neurons:stanford-gpt2-small-a/universal.csv"``) every
    neuron value the plan sets is also kept per origin: the neuron's ``sources`` list names each
    origin and ``source_values`` holds, at the same position, the JSON of the values that origin
    gave. Two files that disagree on a neuron both stay visible (the plain property holds the
    last import's value). ``label()`` adds to the neuron's ``labels`` list (e.g.
    ``feature:all_caps``).
    """

    model: str = ""
    origin: str | None = None
    sources: dict[str, dict[str, dict]] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)
    neurons: dict[str, dict] = field(default_factory=dict)
    heads: dict[str, dict] = field(default_factory=dict)
    tokens: dict[str, dict] = field(default_factory=dict)
    examples: dict[str, dict] = field(default_factory=dict)
    rows: dict[str, list[dict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model:
            check_model_name(self.model)  # once here: the hot paths below format keys directly

    def neuron(self, layer: int, index: int, **props: Any) -> str:
        key = f"{self.model}/{layer}/{index}"  # == domain.neuron_key (tested)
        row = self.neurons.get(key)
        if row is None:
            row = self.neurons[key] = {"key": key, "model": self.model, "layer": layer, "index": index,
                                       "layer_key": f"{self.model}/L{layer}", "props": {}}
        if props:
            given = {k: v for k, v in props.items() if v is not None}
            row["props"].update(given)
            if self.origin is not None:
                self.sources.setdefault(key, {}).setdefault(self.origin, {}).update(given)
        return key

    def record(self, key: str, **values: Any) -> None:
        """Keep values under this plan's origin for the neuron without making them properties."""
        assert self.origin is not None, "record() needs a Plan with an origin"
        mine = self.sources.setdefault(key, {}).setdefault(self.origin, {})
        for k, v in values.items():
            mine.setdefault(k, []).append(v)

    def label(self, key: str, *labels: str) -> None:
        have = self.labels.setdefault(key, [])
        have.extend(x for x in labels if x not in have)

    def head(self, layer: int, head: int) -> str:
        key = head_key(self.model, layer, head)
        self.heads.setdefault(key, {"key": key, "model": self.model, "layer": layer, "head": head,
                                    "layer_key": layer_key(self.model, layer)})
        return key

    def token(self, token_id: int, text: str | None = None) -> str:
        key = token_key(self.model, token_id)
        row = self.tokens.setdefault(key, {"key": key, "model": self.model, "id": token_id, "text": None})
        if text is not None:
            row["text"] = text
        return key

    def example(self, key: str, tokens: list[str], data_index: int | None, source: str) -> str:
        self.examples[key] = {"key": key, "model": self.model, "tokens": tokens,
                              "data_index": data_index, "source": source}
        return key

    def add(self, query: str, *rows: dict) -> None:
        self.rows.setdefault(query, []).extend(rows)

    def merge(self, other: "Plan") -> None:
        for key, row in other.neurons.items():
            mine = self.neurons.get(key)
            if mine is None:
                self.neurons[key] = {**row, "props": dict(row["props"])}
            else:
                mine["props"].update(row["props"])
        self.heads.update(other.heads)
        for key, row in other.tokens.items():
            if key not in self.tokens or row["text"] is not None:
                self.tokens[key] = row
        self.examples.update(other.examples)
        for key, by_origin in other.sources.items():
            mine_o = self.sources.setdefault(key, {})
            for origin, values in by_origin.items():
                mine_o.setdefault(origin, {}).update(values)
        for key, labels in other.labels.items():
            self.label(key, *labels)
        for q, rows in other.rows.items():
            self.add(q, *rows)

    def size(self) -> int:
        return (len(self.neurons) + len(self.heads) + len(self.tokens) + len(self.examples)
                + len(self.sources) + len(self.labels) + sum(len(r) for r in self.rows.values()))

    def batches(self) -> Iterator[tuple[str, list[dict]]]:
        named = {"upsert_neurons": list(self.neurons.values()), "upsert_heads": list(self.heads.values()),
                 "merge_imported_tokens": list(self.tokens.values()),
                 "upsert_examples": list(self.examples.values()),
                 # one row per neuron: the query merges lists, so a neuron must not repeat in a batch
                 "merge_neuron_sources": [
                     {"neuron": k, "sources": sorted(by_origin),
                      "values": [json.dumps(by_origin[o], sort_keys=True, allow_nan=False) for o in sorted(by_origin)]}
                     for k, by_origin in self.sources.items()],
                 "merge_neuron_labels": [{"neuron": k, "labels": v} for k, v in self.labels.items()]}
        for q in WRITE_ORDER:
            rows = named.get(q) or self.rows.get(q) or []
            if rows:
                yield q, rows
        unknown = set(self.rows) - set(WRITE_ORDER)
        if unknown:  # a programming error, not a user one
            raise AssertionError(f"no write order for {sorted(unknown)}")

    def see(self, model: ImportModel) -> None:
        """Grow the model's inferred sizes from what this plan mentions."""
        for row in self.neurons.values():
            model.see_neuron(row["layer"], row["index"])
        for row in self.heads.values():
            model.see_head(row["layer"], row["head"])


# --- running --------------------------------------------------------------------------

UnitSource = Callable[[], Iterable[tuple]]
"""A callable that lists the units: (label, parse) pairs; parse() validates and returns a Plan.
A unit may add a third item, True, when its input was validated as a whole up front (a
tensor file checked on load): the validation pass then skips it."""


_REMEMBER: ContextVar[Path | None] = ContextVar("neurograph_import_memory", default=None)


@contextmanager
def remember_imports(path: Path | str) -> Iterator[None]:
    """Within this block, imports keep a digest of the rows they write in the JSON file
    ``path`` (per model and source, with the graph's change stamp) and report ``"status":
    "unchanged"`` when a re-run wrote exactly the rows of the last import of that source into
    that model and nothing else wrote to the graph in between, else ``"written"``. The
    digest lives beside the graph, not in it, so an import that changes nothing leaves the
    graph exactly as it was. The CLI keeps it under the data directory.

        with remember_imports(settings.data_dir / "imports" / f"{settings.graph}.json"):
            summary = await import_source(store, "openai", path)
    """
    token = _REMEMBER.set(Path(path))
    try:
        yield
    finally:
        _REMEMBER.reset(token)


async def _read_memory(store: Any, path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict) or not isinstance(data.get("digests"), dict) or \
            data.get("stamp") != await store.read_stamp():
        data = {"digests": {}}  # something else wrote since: no digest can vouch for the graph
    return data


def _write_memory(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def validate_units(model: ImportModel, units: UnitSource, *, progress: bool = True) -> list[tuple]:
    """Pass 1 of an import: parse (validate) every unit and check it against the model's exact
    sizes; raises on the first bad one, writes nothing. Returns the listed units for pass 2."""
    listed = list(units())
    with progress_bar(progress) as bar:
        task = bar.add_task(f"validate {model.source}", total=len(listed))
        for _label, parse, *checked in listed:
            if not (checked and checked[0]):
                parse().see(model)
            bar.advance(task)
    # Exact sizes (known model, metadata, tensors, --model-info) must hold every unit seen.
    if model.n_layers is not None and model.seen_layers > model.n_layers:
        raise InputFileError(f"model {model.name}", f"data has layer {model.seen_layers - 1} but n_layers is "
                             f"{model.n_layers} ({model.sizes_from})", "n_layers")
    if model.d_mlp is not None and model.seen_mlp > model.d_mlp:
        raise InputFileError(f"model {model.name}", f"data has neuron {model.seen_mlp - 1} but d_mlp is "
                             f"{model.d_mlp} ({model.sizes_from})", "d_mlp")
    return listed


async def run_import(store: Any, model: ImportModel, units: UnitSource, *, progress: bool = True,
                     batch_units: int = 200, batch_rows: int = 50_000,
                     validated: list[tuple] | None = None) -> dict[str, Any]:
    """Validate every unit, then write the model, its layers and every unit's rows.
    ``validated``: the units :func:`validate_units` already checked (pass 1 is then skipped).

    Returns summary counts: ``{"model", "source", "units", "rows": {query: n}, "neurons", ...}``;
    ``warnings`` lists what the caller should tell the user (e.g. sizes known only as bounds).
    """
    # Pass 1: validate everything; nothing is written if any unit is bad.
    listed = validated if validated is not None else validate_units(model, units, progress=progress)
    warnings = model.warnings()
    for w in warnings:
        log.warning(w)
    counts: Counter[str] = Counter()
    mrow = model.row()
    # A digest of every row written (see remember_imports): equal to the last import's of this
    # source into this model, with no other write since, the import changed nothing.
    digest = hashlib.sha1(json.dumps(mrow, sort_keys=True, default=str).encode())
    memory = _REMEMBER.get()
    seen = await _read_memory(store, memory) if memory is not None else None
    await store.write("merge_imported_model", [mrow])
    n_layers = max(mrow["n_layers"] or 0, model.seen_layers)
    await store.write("merge_imported_layers", [
        {"key": layer_key(model.name, l), "model": model.name, "layer": l, "n_neurons": mrow["d_mlp"]}
        for l in range(n_layers)])
    counts["upsert_layers"] = n_layers

    # Pass 2: parse again (bounded memory for large trees) and write in batches.
    bare_written: set[str] = set()  # neurons already written that an edge merely names again

    async def flush(plan: Plan) -> None:
        for q, rows in plan.batches():
            if q == "upsert_neurons":
                rows = [r for r in rows if r["props"] or r["key"] not in bare_written]
                bare_written.update(r["key"] for r in rows)
                if not rows:
                    continue
            digest.update(q.encode())
            digest.update(json.dumps(rows, sort_keys=True, default=str).encode())
            counts[q] += await store.write(q, rows)

    with progress_bar(progress) as bar:
        task = bar.add_task(f"write {model.source}", total=len(listed))
        pending = Plan(model.name)
        n = 0
        for _label, parse, *_checked in listed:
            plan = parse()
            if pending.size() == 0:
                pending = plan  # adopt rather than copy: units are often big enough alone
            else:
                pending.merge(plan)
            n += 1
            bar.advance(task)
            if n % batch_units == 0 or pending.size() >= batch_rows:
                await flush(pending)
                pending = Plan(model.name)
        await flush(pending)
    status = {}
    if memory is not None and seen is not None:
        key = f"{model.name} {model.source}"
        status["status"] = "unchanged" if seen["digests"].get(key) == digest.hexdigest() else "written"
        seen["digests"][key] = digest.hexdigest()
        seen["stamp"] = await store.read_stamp()
        _write_memory(memory, seen)

    rows = {q: counts[q] for q in counts}
    return {
        "source": model.source, "model": model.name, "units": len(listed),
        # with remember_imports: "unchanged" when the rows were the last import's (counts are rows written)
        **status,
        "n_layers": mrow["n_layers"], "d_mlp": mrow["d_mlp"],
        **{k: v for k, v in model.inferred().items()}, "warnings": warnings,
        "neurons": counts["upsert_neurons"], "examples": counts["upsert_examples"],
        "explanations": counts["upsert_explanations"], "tokens": counts["merge_imported_tokens"],
        "edges": sum(counts[q] for q in WRITE_ORDER[WRITE_ORDER.index("upsert_imported_activations"):]
                     if q not in ("upsert_explanations", "upsert_n2g_pattern_nodes")),
        "rows": rows,
    }


def sorted_numeric(folder: Path, suffix: str) -> list[tuple[int, Path]]:
    """Children of folder named ``{int}{suffix}`` (or ``{int}`` dirs when suffix is ''), by number."""
    out = []
    if not folder.is_dir():
        return out
    for p in folder.iterdir():
        stem = p.name[: -len(suffix)] if suffix and p.name.endswith(suffix) else (p.name if not suffix else None)
        if stem is not None and stem.isdigit() and (p.is_dir() if not suffix else p.is_file()):
            out.append((int(stem), p))
    return sorted(out)


def layer_neuron_files(root: Path, suffix: str) -> list[tuple[int, int, Path]]:
    """``root/{layer}/{neuron}{suffix}`` files, sorted by (layer, neuron)."""
    return [(l, n, f) for l, d in sorted_numeric(root, "") for n, f in sorted_numeric(d, suffix)]
