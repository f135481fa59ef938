"""Per-request DataLoaders: each field of a page of nodes is fetched in one ``UNWIND $keys``
round trip (all weighted-edge fields of the page together in one), so a page of 50 neurons
with their edges costs the same number of database round trips as a page of 10.

    loaders = Loaders(store)
    neuron = await loaders.neuron.load("gpt2/3/17")            # dict of properties or None
    edges = await loaders.edges.load(EdgeKey("outputs", "gpt2/3/17", kinds=("virtual",)))
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from typing import Any

from strawberry.dataloader import DataLoader

from ..domain import parse_key
from ..neighbours import DEFAULT_K, decode
from ..store import Store

@dataclass(frozen=True)
class EdgeKey:
    """One unit's edges for one field (inputs, outputs, correlated, similar, heads, tokens,
    head_neurons) with the filters and order the field asks for."""

    field: str
    key: str
    kinds: tuple[str, ...] | None = None
    min_weight: float | None = None
    order: str = "abs"  # weight | asc | abs
    # Only the first `limit` edges are wanted (no count, rank or later page): inputs and
    # outputs can then come from the neighbour lists instead of every edge of a hub.
    limit: int | None = None


# field -> (relationship type, direction from the unit: True out, False in, None either)
EDGE_FIELDS: dict[str, tuple[str, bool | None]] = {
    "inputs": ("COMPOSES", False),
    "outputs": ("COMPOSES", True),
    "correlated": ("CORRELATES", None),
    "similar": ("SIMILAR", None),
    "heads": ("HEAD_COMPOSES", None),
    "tokens": ("TOKEN_EFFECT", True),
    "head_neurons": ("HEAD_COMPOSES", None),
    "attributes": ("ATTRIBUTES_TO", True),
    "attributed_by": ("ATTRIBUTES_TO", False),
}

_SORT = {
    "abs": lambda e: -abs(e["weight"]),
    "weight": lambda e: -e["weight"],
    "asc": lambda e: e["weight"],
}


def summary_from_key(key: str) -> dict[str, Any]:
    """What a unit's key alone says about it: model and position (neuron, head) or token id."""
    unit = parse_key(key)
    if unit is None:
        return {"key": key}
    if unit.label == "Token":
        return {"key": key, "model": unit.model, "id": unit.index}
    position = "head" if unit.label == "Head" else "index"
    return {"key": key, "model": unit.model, "layer": unit.layer, position: unit.index}


def select_edges(rows: list[dict], key: EdgeKey) -> list[dict]:
    """One field's edges out of a unit's fetched rows: direction, kinds, min |weight|, order.
    Symmetric relations stored both ways (A->B and B->A) appear once, the stronger one."""
    rel, direction = EDGE_FIELDS[key.field]
    best: dict[tuple, dict] = {}
    for r in rows:
        if r["type"] != rel or (direction is not None and r["outgoing"] != direction):
            continue
        if key.kinds is not None and r["kind"] not in key.kinds:
            continue
        if rel == "ATTRIBUTES_TO" and r["kind"] != "neuron":
            continue  # neuron -> token (logit) circuits are not neurons: Cypher has them
        w = r.get("weight")
        if w is None or (key.min_weight is not None and abs(w) < key.min_weight):
            continue
        # Heads keep both directions apart (Q/K/V out, O in); symmetric relations merge them.
        ident = (r["other"], r["kind"], r["outgoing"] if rel == "HEAD_COMPOSES" else None)
        if ident not in best or abs(best[ident]["weight"]) < abs(w):
            best[ident] = {"kind": r["kind"], "weight": w, "rank": r.get("rank"), "count": r.get("count"),
                           "outgoing": r["outgoing"], "node": summary_from_key(r["other"])}
    return sorted(best.values(), key=lambda e: (_SORT[key.order](e), e["node"]["key"]))


@dataclass(frozen=True)
class ExamplesKey:
    key: str
    kind: str
    after_rank: int
    limit: int


class Loaders:
    """The DataLoaders of one GraphQL request (DataLoaders cache per request, never across).

    The batch functions see the store, never this object: a DataLoader whose function points
    back here would make each request's loaders, and every row they cached, a reference cycle
    that only the garbage collector frees, and under load its full collections cost more than
    the rest of the request."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.neuron = DataLoader(partial(_by_key, store, "neurons_by_key", "n"))
        self.head = DataLoader(partial(_by_key, store, "heads_by_key", "h"))
        self.token = DataLoader(partial(_by_key, store, "tokens_by_key", "t"))
        self.explanation = DataLoader(partial(_by_key, store, "explanations_by_key", "x"))
        self.model = DataLoader(partial(_models, store))
        self.edges = DataLoader(partial(_edges, store, self.token))
        self.examples = DataLoader(partial(_examples, store))
        self.explanations = DataLoader(partial(_per_key, store, "neuron_explanations", "explanations"))
        self.pattern = DataLoader(partial(_per_key, store, "neuron_pattern", "nodes"))


async def _by_key(store: Store, query: str, column: str, keys: list[str]) -> list[dict | None]:
    rows = await store.query(query, keys=list(dict.fromkeys(keys)))
    found = {r["key"]: r[column] for r in rows}
    return [found.get(k) for k in keys]


async def _per_key(store: Store, query: str, column: str, keys: list[str]) -> list[Any]:
    rows = await store.query(query, keys=list(dict.fromkeys(keys)))
    found = {r["key"]: r[column] for r in rows}
    return [found.get(k, []) for k in keys]


async def _models(store: Store, names: list[str]) -> list[dict | None]:
    rows = await store.query("models_by_name", names=list(dict.fromkeys(names)))
    found = {r["name"]: {**r["m"], "n_neurons": r["n_neurons"]} for r in rows}
    return [found.get(n) for n in names]


def _listable(k: EdgeKey) -> bool:
    return k.field in ("inputs", "outputs") and k.limit is not None and k.limit <= DEFAULT_K \
        and k.order == "abs" and k.min_weight is None


async def _from_lists(store: Store, keys: list[EdgeKey]) -> dict[EdgeKey, list[dict]]:
    """The first edges of inputs / outputs fields from the units' neighbour lists (those whose
    units have one), as select_edges gives them less the rank: same order, same ties."""
    units = list(dict.fromkeys(k.key for k in keys))
    stored = await store.neighbour_lists(units)
    if stored is None or stored[0] < max(k.limit or 0 for k in keys):
        return {}
    text = dict(zip(units, stored[1]))
    found: dict[EdgeKey, list[dict]] = {}
    for k in keys:
        if text.get(k.key) is None:
            continue
        outgoing = EDGE_FIELDS[k.field][1]
        groups = decode(text[k.key], k.key, {"COMPOSES"}, set(k.kinds) if k.kinds else None, None, k.limit, outgoing)
        best = sorted(((-abs(w), other, w, g["kind"]) for g in groups for other, w in g["ends"]), key=lambda t: t[:2])
        found[k] = [{"kind": kind, "weight": w, "rank": None, "count": None, "outgoing": outgoing,
                     "node": summary_from_key(other)} for _, other, w, kind in best[:k.limit]]
    return found


async def _edges(store: Store, tokens: DataLoader, keys: list[EdgeKey]) -> list[list[dict]]:
    """All edge fields of all units in view: one round trip for neurons, one for heads. Tokens
    at the other end come whole: they fill the token loader, so their texts cost no round trip.
    A page that wants only the first few inputs / outputs reads them from the neighbour lists."""
    listed = await _from_lists(store, [k for k in keys if _listable(k)]) if any(map(_listable, keys)) else {}
    if listed:
        rest = [k for k in keys if k not in listed]
        if not rest:
            return [listed[k] for k in keys]
        found = dict(zip(rest, await _edges(store, tokens, rest)))
        return [listed[k] if k in listed else found[k] for k in keys]
    neurons = list(dict.fromkeys(k.key for k in keys if k.field != "head_neurons"))
    heads = list(dict.fromkeys(k.key for k in keys if k.field == "head_neurons"))
    rows: dict[tuple[bool, str], list[dict]] = defaultdict(list)
    if neurons:
        dirs = [EDGE_FIELDS[k.field] for k in keys if k.field != "head_neurons"]
        out_types = sorted({t for t, d in dirs if d is not False})
        in_types = sorted({t for t, d in dirs if d is not True})
        for r in await store.query("neuron_edges", keys=neurons, out_types=out_types, in_types=in_types):
            rows[(False, r["key"])].append(r)
            if r["token"] is not None:
                tokens.prime(r["other"], r["token"])
    if heads:
        for r in await store.query("head_neurons", keys=heads):
            rows[(True, r["key"])].append(r)
    return [select_edges(rows.get((k.field == "head_neurons", k.key), []), k) for k in keys]


async def _examples(store: Store, keys: list[ExamplesKey]) -> list[tuple[int, list[dict]]]:
    """(how many of that kind, the page) per key: every page asked for (kind, cursor, size) of
    every neuron in one round trip (a neuron page's max and random examples together)."""
    pages = list(dict.fromkeys((k.kind, k.after_rank, k.limit) for k in keys))
    rows = await store.query("neuron_examples", keys=list(dict.fromkeys(k.key for k in keys)),
                             pages=[{"kind": kind, "after_rank": after, "limit": limit}
                                    for kind, after, limit in pages])
    found = {(r["key"], r["kind"], r["after_rank"], r["limit"]): (int(r["total"]), r["examples"]) for r in rows}
    return [found.get((k.key, k.kind, k.after_rank, k.limit), (0, [])) for k in keys]
