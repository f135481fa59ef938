"""Neighbour lists: each unit's strongest edges of every (type, kind, direction) group, made once
so a neighbourhood does not scan every edge of the hubs it meets.

On the demo graph a neuron the strongest edges lead to has ~3,400 edges (every neuron's top-k
virtual weights point at a few hubs), so a depth-2 neighbourhood read ~110k edges (1-4 s of
FalkorDB) to keep ~150. The lists hold, per unit and group, the ``k`` strongest edges exactly as
``cypher/neighborhood_step.cypher`` ranks them (``cypher/neighbour_lists.cypher`` makes them;
tests/test_neighbours.py holds both to a plain reading of every edge), so a level of a
traversal costs one HMGET. They are kept beside the graph (a Redis hash on FalkorDB,
none on Neo4j) and are never stale: a write through the store that can touch a traversed edge
forgets the lists of its units (all lists, for statements it cannot attribute), and a unit with
no list is read from the graph as before.

    await build_neighbour_lists(store, "smollm2-135m")   # after a build; `neurograph neighbours`
    k, lists = await store.neighbour_lists(["m/3/17"])   # k: edges kept per group
    groups = decode(lists[0], "m/3/17")                   # [{"type", "kind", "outgoing", "ends"}]
"""

from __future__ import annotations

import re
import time
from typing import Any

from .queries import QUERIES

# Relationship types a neighbourhood follows between neurons and heads, and the kinds of each
# it follows (ATTRIBUTES_TO: the corpus circuits between neurons; its neuron -> logit edges end
# at tokens, which a neighbourhood does not draw).
TRAVERSED_KINDS: dict[str, tuple[str, ...]] = {
    "COMPOSES": ("in_in", "in_out", "out_in", "out_out", "virtual", "gate_virtual"),
    "CORRELATES": ("pearson",),
    "SIMILAR": ("n2g",),
    "HEAD_COMPOSES": ("K", "Q", "V", "O"),
    "ATTRIBUTES_TO": ("neuron",),
}
DEFAULT_K = 10  # edges kept per group: the API's perNode default; a larger perNode reads the graph
_TOUCHES = re.compile(r"\b(" + "|".join(TRAVERSED_KINDS) + r")\b|\bDELETE\b", re.IGNORECASE)
_UNIT_FIELDS = ("src", "dst", "neuron", "head")  # what the library's edge writers name their ends by


def touched_units(text: str, params: dict[str, Any], result: list[dict] | None = None) -> list[str] | None:
    """The units whose lists a write statement may have made stale: [] none, None all.

    A library statement that names no traversed type and deletes nothing touches none; one that
    returns the units it touched (a ``touched`` column of keys) touches those; one whose rows
    name their ends (src/dst, neuron/head) touches those; anything else (a raw statement) may
    have touched any edge."""
    library = text in _library_texts()
    if library and not _TOUCHES.search(text):
        return []
    if library and result and all("touched" in r for r in result):
        return list(dict.fromkeys(k for r in result for k in r["touched"] or ()))
    rows = params.get("rows")
    if library and "DELETE" not in text.upper() and isinstance(rows, list) and rows \
            and all(isinstance(r, dict) and any(f in r for f in _UNIT_FIELDS) for r in rows):
        return list(dict.fromkeys(str(r[f]) for r in rows for f in _UNIT_FIELDS if f in r))
    return None


_TEXTS: frozenset[str] | None = None


def _library_texts() -> frozenset[str]:
    global _TEXTS
    if _TEXTS is None:
        _TEXTS = frozenset(q.text for q in QUERIES.all())
    return _TEXTS


def _short(key: str, prefix: str) -> str:
    return key[len(prefix):] if key.startswith(prefix) else "/" + key


def encode(key: str, rows: list[dict]) -> str:
    """One unit's list from its ``neighbour_lists`` rows: a line per group, ``TYPE kind out``
    then ``other weight`` pairs (the other key without the model prefix the unit's key has;
    weights to 9 significant digits, as float32 holds them)."""
    prefix = key.split("/", 1)[0] + "/"
    lines = []
    for r in rows:
        head = f"{r['type']} {r['kind']} {int(bool(r['outgoing']))}"
        ends = (f"{_short(o, prefix)} {float(w):.9g}" for o, w in zip(r["others"], r["weights"]) if w is not None)
        lines.append("\t".join([head, *ends]))
    return "\n".join(lines)


def decode(text: str, key: str, types: set[str] | None = None, kinds: set[str] | None = None,
           min_weight: float | None = None, limit: int | None = None, outgoing: bool | None = None) -> list[dict]:
    """A unit's groups, only of ``types`` / ``kinds`` (and direction), as ``{"type", "kind",
    "outgoing", "ends"}`` with ``ends`` the (other key, weight) pairs, strongest first, |weight| >=
    min_weight, at most ``limit``. Plain tuples: a depth-2 neighbourhood decodes ~1,600."""
    prefix = key.split("/", 1)[0] + "/"
    groups = []
    want = None if outgoing is None else ("1" if outgoing else "0")
    for line in text.split("\n") if text else ():
        head, _, rest = line.partition("\t")
        type_, kind, out = head.split(" ")
        if not rest or (types is not None and type_ not in types) or (kinds is not None and kind not in kinds) \
                or (want is not None and out != want):
            continue
        ends = []
        for pair in (rest.split("\t", limit)[:limit] if limit is not None else rest.split("\t")):
            other, w = pair.split(" ")
            weight = float(w)
            if min_weight is not None and abs(weight) < min_weight:
                break  # strongest first: the rest are weaker still
            ends.append((other[1:] if other[0] == "/" else prefix + other, weight))
        if ends:
            groups.append({"type": type_, "kind": kind, "outgoing": out == "1", "ends": ends})
    return groups


async def unit_keys(store: Any, model: str) -> list[str]:
    """Every neuron and head of a model, as keys."""
    from .domain import neuron_key

    coords = await store.query("model_neuron_coords", model=model)
    heads = await store.query("model_heads", model=model, layer=None)
    return [neuron_key(model, c["layer"], c["index"]) for c in coords] + [r["h"]["key"] for r in heads]


async def build_neighbour_lists(store: Any, model: str, *, batch: int = 64, progress: bool = False,
                                missing: bool = False) -> dict[str, Any]:
    """Make the neighbour lists of every unit of ``model`` (replacing the ones it has), or with
    ``missing`` of the units that have none (those a write has touched since); a store that
    keeps none (Neo4j) is left as it is."""
    from .progress import progress_bar

    k = DEFAULT_K
    if not store.keeps_neighbour_lists:
        return {"model": model, "units": 0, "k": k, "mib": 0.0, "seconds": 0.0}
    t0 = time.perf_counter()
    keys = await unit_keys(store, model)
    if missing:
        have = await store.neighbour_list_units()
        keys = [key for key in keys if key not in have]
    else:
        await store.forget_neighbour_lists(keys)
    size = 0
    with progress_bar(progress) as bar:
        task = bar.add_task(f"neighbour lists of {model}", total=len(keys))
        for i in range(0, len(keys), batch):
            part = keys[i:i + batch]
            rows = await store.query("neighbour_lists", keys=part, per_node=k)
            by_key: dict[str, list[dict]] = {key: [] for key in part}
            for r in rows:
                by_key[r["key"]].append(r)
            lists = {key: encode(key, groups) for key, groups in by_key.items()}
            size += sum(len(v) for v in lists.values())
            await store.put_neighbour_lists(k, lists)
            bar.advance(task, len(part))
    return {"model": model, "units": len(keys), "k": k, "mib": round(size / 2**20, 1),
            "seconds": round(time.perf_counter() - t0, 1)}
