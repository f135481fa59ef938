"""Graph topology of a model's neurons: degree, strength, betweenness, communities and roles.

Reads the stored weighted neuron→neuron edges (``COMPOSES``, ``CORRELATES``, optionally
``SIMILAR``) in bounded batches, builds an undirected networkx graph on |weight|, and writes
per-neuron props back to the store with ``set_neuron_props``. The corpus circuits
(``ATTRIBUTES_TO``, weight = mean effect) get their own topology, the same props with the prefix
``circuit_`` (``circuit_role``, ``circuit_community``, ...; ``prefix="circuit_"``), so both
stand side by side:

``degree``        number of distinct neighbours
``strength``      sum of |weight| over those neighbours
``betweenness``   normalised betweenness centrality, shortest paths on distance 1/|weight|
                  (sampled from ``betweenness_k`` sources on bigger graphs)
``community``     Louvain community (seeded), 0 = the largest
``participation`` P = 1 - sum_s (strength into community s / strength)^2
``within_z``      z-score of the strength inside its own community among that community's members
``role``          Guimerà–Amaral (Nature 2005) role from (within_z, participation), see ``role_of``

Roles (thresholds of Guimerà & Amaral, with strength in place of degree, which is the same on
an unweighted graph): a hub has within_z >= 2.5. Non-hubs by P: <= 0.05 ultra_peripheral,
<= 0.62 peripheral, <= 0.80 connector, above kinless. Hubs by P: <= 0.30 provincial_hub,
<= 0.75 connector_hub, above kinless_hub. With only two communities P can reach 0.5 at most,
so a neuron bridging two modules is "peripheral"; connectors spread links over 3+ modules.

Several edges between the same two neurons (several kinds, or both directions of a
correlation) become one undirected edge whose weight is the largest |weight| among them, so
that a symmetric pair is not counted twice. Neurons without any selected edge are left out
(their props are cleared). The same seed gives the same result, so an interrupted run is
resumed by running it again; writes are idempotent.

    from neurograph.topology import compute_topology
    summary = await compute_topology(store, "smollm2-135m", kinds=("COMPOSES:virtual",), min_weight=0.05)
    summary["communities"], summary["roles"]      # e.g. 12, {'peripheral': 4100, 'connector': 230, ...}
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import Counter, defaultdict
from typing import Any, Callable, Iterable, Sequence

import networkx as nx

from .domain import CIRCUIT_TOPOLOGY_PREFIX, EDGE_KINDS, TOPOLOGY_KINDS, check_model_name, neuron_key
from .errors import NeuroGraphError, NotFound
from .progress import progress_bar
from .store.base import Store

EDGE_TYPES = ("COMPOSES", "CORRELATES", "SIMILAR", "ATTRIBUTES_TO")
# The prop sets topology writes: plain (weights and correlations) and the corpus circuits'; each
# cleared by its own statement before a re-run.
PREFIXES = {"": "topology_clear", CIRCUIT_TOPOLOGY_PREFIX: "topology_clear_circuit"}

# Guimerà & Amaral (2005), "Functional cartography of complex metabolic networks": a node is a
# hub when its within-module z-score is >= 2.5; roles then split on the participation P.
HUB_Z = 2.5
NON_HUB_P = ((0.05, "ultra_peripheral"),  # R1: (almost) all links inside its module
             (0.62, "peripheral"),        # R2: most links inside its module
             (0.80, "connector"),         # R3: many links to other modules
             (math.inf, "kinless"))       # R4: links spread evenly over all modules
HUB_P = ((0.30, "provincial_hub"),        # R5
         (0.75, "connector_hub"),         # R6
         (math.inf, "kinless_hub"))       # R7
ROLES = tuple(r for _, r in NON_HUB_P + HUB_P)

ANALYSIS_STEPS = ("betweenness", "communities", "roles")
PROPS = ("degree", "strength", "betweenness", "community", "participation", "within_z", "role")


def role_of(within_z: float, participation: float) -> str:
    """Guimerà–Amaral role: hub if within_z >= HUB_Z, then by participation thresholds.

    >>> role_of(0.0, 0.0), role_of(0.3, 0.67), role_of(3.0, 0.1)
    ('ultra_peripheral', 'connector', 'provincial_hub')
    """
    table = HUB_P if within_z >= HUB_Z else NON_HUB_P
    for upper, role in table:
        if participation <= upper:
            return role
    return table[-1][1]


def _selection(kinds: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split ('COMPOSES', 'CORRELATES:pearson') into relationship types and 'TYPE:kind' pairs."""
    types, pairs = [], []
    for k in kinds:
        rel, _, kind = str(k).partition(":")
        if rel not in EDGE_TYPES:
            raise ValueError(f"edge selection {k!r}: the type must be one of {', '.join(EDGE_TYPES)}")
        if not kind:
            types.append(rel)
        elif kind in (EDGE_KINDS.get(rel) or ()):
            pairs.append(f"{rel}:{kind}")
        else:
            raise ValueError(f"edge selection {k!r}: {rel} kinds are {', '.join(EDGE_KINDS.get(rel) or ())}")
    if not types and not pairs:
        raise ValueError("select at least one edge type or kind, e.g. kinds=('COMPOSES',)")
    return types, pairs


async def fetch_graph(store: Store, model: str, *, kinds: Sequence[str] = TOPOLOGY_KINDS,
                      min_weight: float = 0.0, per_node: int | None = 8, batch_neurons: int = 512,
                      max_edges: int = 5_000_000, progress: bool = False) -> nx.Graph:
    """The model's selected edges as an undirected graph weighted by |weight| (max over parallel
    edges). Reads one layer's index range of ``batch_neurons`` source neurons at a time and
    refuses (NeuroGraphError) more than ``max_edges`` stored edges rather than filling memory.

    ``per_node``: keep an edge only if it is among the ``per_node`` strongest of one of its two
    neurons (a k-nearest-neighbour backbone; None keeps all). A build stores ~50 edges per
    neuron over these kinds; Louvain and betweenness on all of them take tens of minutes on a
    whole model, on the backbone about a minute, and the strongest ties decide communities."""
    check_model_name(model)
    types, pairs = _selection(kinds)
    layers = await store.query("topology_layers", model=model)
    if not layers:
        raise NotFound(f"model {model!r} has no neurons in the graph")
    best: dict[tuple[str, str], float] = {}
    seen = 0
    batches = [(r["layer"], lo, min(lo + batch_neurons, r["n_neurons"]))
               for r in layers for lo in range(0, r["n_neurons"], batch_neurons)]
    with progress_bar(progress) as bar:
        task = bar.add_task(f"read {model} edges", total=len(batches))
        for layer, lo, hi in batches:
            keys = [neuron_key(model, layer, i) for i in range(lo, hi)]
            rows = await store.query("topology_edges", keys=keys, types=types, kinds=pairs,
                                     min_weight=float(min_weight), limit=max_edges - seen + 1)
            seen += len(rows)
            if seen > max_edges:
                raise NeuroGraphError(f"model {model!r} has more than {max_edges} selected edges; "
                                      "raise max_edges, raise min_weight or select fewer kinds")
            for r in rows:
                a, b, w = r["src"], r["dst"], abs(float(r["weight"]))
                if a == b:
                    continue
                pair = (a, b) if a < b else (b, a)
                if w > best.get(pair, -1.0):
                    best[pair] = w
            bar.advance(task)
    if per_node is not None:
        best = _backbone(best, per_node)
    g = nx.Graph()
    # in key order, not the store's: Louvain and float sums follow insertion order, and shards of
    # a build (or a re-import) insert the same edges in another order
    g.add_weighted_edges_from((a, b, w) for (a, b), w in sorted(best.items()))
    return g


def _backbone(edges: dict[tuple[str, str], float], per_node: int) -> dict[tuple[str, str], float]:
    """The edges that are among the ``per_node`` strongest of at least one of their ends."""
    incident: dict[str, list[tuple[float, tuple[str, str]]]] = defaultdict(list)
    for pair, w in edges.items():
        incident[pair[0]].append((w, pair))
        incident[pair[1]].append((w, pair))
    keep = {pair for ties in incident.values() for _, pair in heapq.nlargest(per_node, ties)}
    return {pair: w for pair, w in edges.items() if pair in keep}


def analyse(g: nx.Graph, *, seed: int = 0, resolution: float = 1.0, betweenness_k: int | None = 32,
            step: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Per-node topology props of a graph with non-negative ``weight`` on its edges.
    ``betweenness_k``: sample this many sources when the graph has more nodes (None: exact);
    each source costs one Dijkstra over the whole graph (~1.5 s at 46k nodes / 300k edges).
    ``step(name)`` is called as each of the ANALYSIS_STEPS finishes."""
    step = step or (lambda name: None)
    if g.number_of_nodes() == 0:
        return {}
    # Zero-weight edges would be infinitely long paths; give them a large finite length instead.
    for _, _, d in g.edges(data=True):
        d["distance"] = 1.0 / d["weight"] if d["weight"] > 0 else 1e12
    k = betweenness_k if betweenness_k is not None and betweenness_k < g.number_of_nodes() else None
    betweenness = nx.betweenness_centrality(g, k=k, weight="distance", normalized=True, seed=seed)
    step("betweenness")

    # Louvain on |weight|; a graph with no positive weight gets one community per component.
    if g.size(weight="weight") > 0:
        parts = nx.community.louvain_communities(g, weight="weight", resolution=resolution, seed=seed)
    else:
        parts = list(nx.connected_components(g))
    # Number communities by size (largest first), ties by smallest member, so ids are stable.
    parts = sorted((sorted(p) for p in parts), key=lambda p: (-len(p), p[0]))
    community = {n: c for c, members in enumerate(parts) for n in members}
    step("communities")

    strength = dict(g.degree(weight="weight"))
    into: dict[str, Counter] = {n: Counter() for n in g}
    for a, b, w in g.edges(data="weight"):
        into[a][community[b]] += w
        into[b][community[a]] += w
    inside = {n: into[n][community[n]] for n in g}
    # within-module z-score of the strength inside the module (Guimerà–Amaral's z_i)
    stats: dict[int, tuple[float, float]] = {}
    by_comm: dict[int, list[float]] = defaultdict(list)
    for n in g:
        by_comm[community[n]].append(inside[n])
    for c, vals in by_comm.items():
        mean = sum(vals) / len(vals)
        stats[c] = (mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals)))

    out: dict[str, dict[str, Any]] = {}
    for n in g:
        s = strength[n]
        p = 1.0 - sum((v / s) ** 2 for v in into[n].values()) if s > 0 else 0.0
        mean, std = stats[community[n]]
        z = (inside[n] - mean) / std if std > 0 else 0.0
        p, z = max(0.0, p), float(z)  # rounding can leave P at -1e-16
        out[n] = {"degree": g.degree(n), "strength": float(s), "betweenness": float(betweenness[n]),
                  "community": community[n], "participation": p, "within_z": z, "role": role_of(z, p)}
    step("roles")
    return out


async def compute_topology(store: Store, model: str, *, kinds: Sequence[str] = TOPOLOGY_KINDS,
                           min_weight: float = 0.0, per_node: int | None = 8, seed: int = 0,
                           resolution: float = 1.0,
                           betweenness_k: int | None = 32, batch_neurons: int = 512,
                           max_edges: int = 5_000_000, write: bool = True, prefix: str = "",
                           progress: bool = False) -> dict[str, Any]:
    """Compute the topology of ``model``'s neuron graph and store it as neuron props.

    ``kinds``: relationship types (``COMPOSES``, ``CORRELATES``, ``SIMILAR``) or single kinds
    (``COMPOSES:virtual``, ``CORRELATES:pearson``). ``min_weight``: ignore edges with a smaller
    |weight|. ``per_node``: analyse the backbone of each neuron's strongest edges (see
    :func:`fetch_graph`; None: every edge). ``seed`` makes Louvain and sampled betweenness reproducible. Re-running replaces
    the previous props (idempotent). ``prefix``: "" or "circuit_" (the corpus circuits' own set,
    with ``kinds=CIRCUIT_TOPOLOGY_KINDS``). Returns a summary::

        {"model", "nodes", "edges", "communities", "modularity", "roles": {role: count},
         "betweenness_k", "written", "seconds": {"read", "analyse", "write"}}
    """
    if prefix not in PREFIXES:
        raise ValueError(f"topology prefix {prefix!r}: one of {', '.join(map(repr, PREFIXES))}")
    t0 = time.perf_counter()
    g = await fetch_graph(store, model, kinds=kinds, min_weight=min_weight, per_node=per_node,
                          batch_neurons=batch_neurons,
                          max_edges=max_edges, progress=progress)
    t1 = time.perf_counter()
    with progress_bar(progress) as bar:
        task = bar.add_task(f"analyse {model} ({g.number_of_nodes()} neurons, {g.number_of_edges()} edges)",
                            total=len(ANALYSIS_STEPS))
        # networkx is CPU-bound for minutes on a full model: keep the event loop (an API server) free
        props = await asyncio.to_thread(analyse, g, seed=seed, resolution=resolution,
                                        betweenness_k=betweenness_k, step=lambda name: bar.advance(task))
    communities: dict[int, set[str]] = defaultdict(set)
    for n, p in props.items():
        communities[p["community"]].add(n)
    modularity = (nx.community.modularity(g, communities.values(), weight="weight", resolution=resolution)
                  if g.size(weight="weight") > 0 else 0.0)
    t2 = time.perf_counter()
    written = 0
    if write:
        await store.query(PREFIXES[prefix], model=model)
        rows = [{"key": n, "props": {prefix + name: v for name, v in p.items()}} for n, p in props.items()]
        with progress_bar(progress) as bar:
            task = bar.add_task(f"write {model} topology", total=len(rows))
            written = await store.write("set_neuron_props", rows, batch_size=1000,
                                        progress=lambda n: bar.advance(task, n))
    t3 = time.perf_counter()
    return {
        "model": model, "nodes": g.number_of_nodes(), "edges": g.number_of_edges(),
        "communities": len(communities), "modularity": float(modularity),
        "roles": dict(Counter(p["role"] for p in props.values())),
        "per_node": per_node,
        "betweenness_k": betweenness_k if betweenness_k is not None and betweenness_k < len(props) else None,
        "written": written,
        "seconds": {"read": t1 - t0, "analyse": t2 - t1, "write": t3 - t2},
    }
