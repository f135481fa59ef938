"""Bounded traversals for drawing and path finding: breadth-first neighbourhoods fetched one
level per round trip, and the strongest weighted paths found with networkx over them.

    sub = await neighborhood(store, ["gpt2/3/17"], depth=2, per_node=8)   # per kind and direction
    g = to_networkx(sub)                                  # networkx.DiGraph
    paths = await strongest_paths(store, "gpt2/0/1", "gpt2/2/5", max_hops=3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import islice
from typing import Iterable

import networkx as nx

from ..domain import parse_key
from ..errors import InvalidKey
from ..neighbours import DEFAULT_K, TRAVERSED_KINDS, decode
from ..store import Store
from .dataloaders import summary_from_key

# Relationship types a neighbourhood follows between neurons and heads, and their kinds.
TRAVERSED = tuple(TRAVERSED_KINDS)
UNDIRECTED = ("CORRELATES", "SIMILAR")  # stored one way, meant both ways
MAX_NODES = 2000  # hard cap on one subgraph, whatever depth and perNode ask for


@dataclass
class Fetched:
    """A subgraph as plain data: nodes by key (props plus ``_label``) and edges (dicts)."""

    nodes: dict[str, dict] = field(default_factory=dict)
    edges: dict[tuple[str, str, str, str | None], dict] = field(default_factory=dict)
    truncated: bool = False


def types_for(kinds: Iterable[str] | None) -> list[str]:
    """The relationship types that carry the given edge kinds (all traversed types if None)."""
    if not kinds:
        return list(TRAVERSED)
    kinds = set(kinds)
    unknown = kinds - {k for t in TRAVERSED for k in TRAVERSED_KINDS[t]}
    if unknown:
        known = ", ".join(k for t in TRAVERSED for k in TRAVERSED_KINDS[t])
        raise InvalidKey(f"unknown edge kinds: {', '.join(sorted(unknown))} (known: {known})")
    return [t for t in TRAVERSED if kinds & set(TRAVERSED_KINDS[t])]


def pick_edges(groups: list[dict], per_node: int, per_kind: bool) -> list[tuple[dict, tuple]]:
    """A node's edges to follow, as (group, end) pairs, from its (type, kind, direction) groups,
    each strongest first (``ends``: (other key, weight, its properties or None, its label or None)).

    per_kind: each group is ranked on its own scale and all get their turn: the 1st edge of
    every group, then the 2nd, …, up to per_node edges per group (a virtual weight of 12 does not
    push every cosine and correlation out, and inputs stay beside outputs). Otherwise the
    per_node strongest by |weight| over all groups (ties by the other end's key)."""
    if per_kind:
        lists = [(g, g["ends"][:per_node]) for g in groups]
        return [(g, ends[i]) for i in range(max((len(e) for _, e in lists), default=0)) for g, ends in lists
                if i < len(ends)]
    every = [(g, end) for g in groups for end in g["ends"]]
    every.sort(key=lambda p: (-abs(float(p[1][1])), p[1][0]))
    return every[:per_node]


def _group_order(g: dict) -> tuple:
    return (TRAVERSED.index(g["type"]), g["kind"] or "", not g["outgoing"])


async def _step(store: Store, frontier: list[str], *, types: list[str], kinds: list[str] | None,
                min_weight: float | None, per_node: int) -> dict[str, list[dict]]:
    """Each frontier unit's groups, strongest first: from its neighbour list where it has one
    (when the lists keep per_node edges per group), else from the graph. Ends read from lists
    carry no properties; those read from the graph carry the other unit's and its label."""
    by_key: dict[str, list[dict]] = {k: [] for k in frontier}
    stored = await store.neighbour_lists(frontier) if per_node <= DEFAULT_K else None
    rest = frontier
    if stored is not None and stored[0] >= per_node:
        rest = []
        kind_set = set(kinds) if kinds else None
        type_set = set(types)
        for key, text in zip(frontier, stored[1]):
            if text is None:
                rest.append(key)
            else:
                by_key[key] = [{**g, "ends": [(o, w, None, None) for o, w in g["ends"]]}
                               for g in decode(text, key, type_set, kind_set, min_weight, per_node)]
    if rest:
        rows = await store.query("neighborhood_step", keys=rest, types=types,
                                 kinds=list(kinds) if kinds else None, min_weight=min_weight, per_node=per_node)
        for r in rows:
            by_key[r["key"]].append({"type": r["type"], "kind": r["kind"], "outgoing": r["outgoing"], "ends": [
                (e["node"]["key"], e["weight"], e["node"], e["label"]) for e in r["edges"]]})
    for groups in by_key.values():
        groups.sort(key=_group_order)  # one order whichever way they came
    return by_key


async def neighborhood(store: Store, start: list[dict], *, depth: int = 1, kinds: list[str] | None = None,
                       min_weight: float | None = None, per_node: int = 10, per_kind: bool = True,
                       max_nodes: int = MAX_NODES, props: bool = True) -> Fetched:
    """Breadth-first from ``start`` (node dicts with ``key`` and ``_label``): one or two round
    trips per level (neighbour lists, then the properties of the units they reached, unless
    ``props`` is false: then units reached through lists hold what their keys say).

    per_kind (the default): up to per_node edges of each kind in each direction per node;
    otherwise the per_node strongest by |weight| whatever their kind. Past ``max_nodes`` units
    the rest are left out (``truncated``) and no further level is read; the budget goes round
    the frontier, so every unit's strongest edge is kept before any unit's second."""
    types = types_for(kinds)
    out = Fetched()
    nodes, edges = out.nodes, out.edges
    for s in start:
        nodes[s["key"]] = s
    frontier = [s["key"] for s in start]
    for _ in range(depth):
        if not frontier:
            break
        if len(nodes) >= max_nodes:  # full: a deeper level could add edges between them, no units
            out.truncated = True
            break
        by_key = await _step(store, frontier, types=types, kinds=kinds, min_weight=min_weight, per_node=per_node)
        picks = [[(key, g, end) for g, end in pick_edges(by_key[key], per_node, per_kind)] for key in frontier]
        nxt: list[str] = []
        # every unit's 1st pick, then every unit's 2nd, ...
        for key, g, (other, weight, node, label) in (
                p[i] for i in range(max(map(len, picks), default=0)) for p in picks if i < len(p)):
            if other not in nodes:
                if len(nodes) >= max_nodes:
                    out.truncated = True
                    continue
                nodes[other] = {**node, "_label": label} if node is not None else {"key": other}
                nxt.append(other)
            source, target = (key, other) if g["outgoing"] else (other, key)
            edges[(source, target, g["type"], g["kind"])] = {"source": source, "target": target, "type": g["type"],
                                                             "kind": g["kind"], "weight": float(weight)}
        bare = [k for k in nxt if "_label" not in nodes[k]]
        if bare and not props:
            for k in bare:
                nodes[k] = {**summary_from_key(k), "_label": parse_key(k).label}
        elif bare:  # units reached through lists: their properties, as the graph gives them
            for r in await store.query("neighborhood_nodes", keys=bare):
                nodes[r["node"]["key"]] = {**r["node"], "_label": r["label"]}
        frontier = nxt
    return out


def to_networkx(sub: Fetched) -> nx.DiGraph:
    g = nx.DiGraph()
    for k, p in sub.nodes.items():
        g.add_node(k, **p)
    for e in sub.edges.values():
        a, b = e["source"], e["target"]
        # Keep the strongest edge when two kinds join the same pair.
        if not g.has_edge(a, b) or abs(g[a][b]["weight"]) < abs(e["weight"]):
            g.add_edge(a, b, **e)
    return g


async def strongest_paths(store: Store, source: dict, target: dict, *, max_hops: int = 3,
                          kinds: list[str] | None = None, per_node: int = 10, first: int = 3,
                          directed: bool = False) -> tuple[Fetched, list[list[str]]]:
    """The ``first`` strongest simple paths of at most ``max_hops`` edges between two units.

    Both ends are expanded half way (bidirectional search), so the fetched subgraph stays
    bounded by per_node ** ceil(max_hops / 2) from each side. Strength is the product of
    |weight| / max |weight|; the cost minimised is the sum of -log of that."""
    half = (max_hops + 1) // 2
    a = await neighborhood(store, [source], depth=half, kinds=kinds, per_node=per_node, per_kind=False)
    b = await neighborhood(store, [target], depth=max_hops - half if max_hops > 1 else 1, kinds=kinds,
                           per_node=per_node, per_kind=False)
    merged = Fetched({**a.nodes, **b.nodes}, {**a.edges, **b.edges}, a.truncated or b.truncated)
    g = to_networkx(merged)
    if not directed:
        g = g.to_undirected(as_view=False)
    else:  # a correlation or similarity has no direction: it may be walked either way
        for a, b, d in list(g.edges(data=True)):
            if d["type"] in UNDIRECTED and not g.has_edge(b, a):
                g.add_edge(b, a, **d)
    wmax = max((abs(d["weight"]) for *_, d in g.edges(data=True)), default=1.0) or 1.0
    for *_, d in g.edges(data=True):
        d["cost"] = -math.log(max(abs(d["weight"]) / wmax, 1e-12))
    s, t = source["key"], target["key"]
    if s not in g or t not in g or not nx.has_path(g, s, t):
        return merged, []
    paths = []
    for p in islice(nx.shortest_simple_paths(g, s, t, weight="cost"), 50):
        if len(p) - 1 <= max_hops:
            paths.append(p)
        if len(paths) >= first:
            break
    return merged, paths


def path_strength(sub: Fetched, path: list[str]) -> tuple[list[dict], float]:
    """The stored edges along a path (either direction) and its normalised strength."""
    by_pair: dict[tuple[str, str], dict] = {}
    for e in sub.edges.values():
        for pair in ((e["source"], e["target"]), (e["target"], e["source"])):
            if pair not in by_pair or abs(by_pair[pair]["weight"]) < abs(e["weight"]):
                by_pair[pair] = e
    wmax = max((abs(e["weight"]) for e in sub.edges.values()), default=1.0) or 1.0
    edges = [by_pair[(u, v)] for u, v in zip(path, path[1:])]
    strength = math.prod(abs(e["weight"]) / wmax for e in edges)
    return edges, strength
