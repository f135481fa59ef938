"""Per-request DataLoaders: every field of a page of nodes is fetched in one ``UNWIND $keys``
round trip per distinct argument set, so a page of 50 neurons with their edges costs the
same number of database round trips as a page of 10.

    loaders = Loaders(store)
    neuron = await loaders.neuron.load("gpt2/3/17")            # dict of properties or None
    edges = await loaders.edges.load(EdgeKey("neuron_outputs", "gpt2/3/17"))
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

from strawberry.dataloader import DataLoader

from ..store import Store

# The most edges one neuron returns for one field: edges are stored top-k per unit, so this
# only bounds a pathological graph.
EDGE_CAP = 200


@dataclass(frozen=True)
class EdgeKey:
    """One neuron's edges from one named query, with the filters that change the rows."""

    query: str
    key: str
    kinds: tuple[str, ...] | None = None
    min_weight: float | None = None
    order: str = "weight"  # weight | asc | abs
    cap: int = EDGE_CAP


@dataclass(frozen=True)
class ExamplesKey:
    key: str
    kind: str
    after_rank: int
    limit: int


def _grouped(keys: Sequence[Any], group: Any) -> dict[Hashable, list[Any]]:
    groups: dict[Hashable, list[Any]] = defaultdict(list)
    for k in keys:
        groups[group(k)].append(k)
    return groups


class Loaders:
    """The DataLoaders of one GraphQL request (DataLoaders cache per request, never across)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.neuron = DataLoader(self._by_key("neurons_by_key", "n"))
        self.head = DataLoader(self._by_key("heads_by_key", "h"))
        self.token = DataLoader(self._by_key("tokens_by_key", "t"))
        self.model = DataLoader(self._models)
        self.edges = DataLoader(self._edges)
        self.examples = DataLoader(self._examples)
        self.example_counts = DataLoader(self._per_key("neuron_example_counts", None))
        self.explanations = DataLoader(self._per_key("neuron_explanations", "explanations"))
        self.pattern = DataLoader(self._per_key("neuron_pattern", "nodes"))

    def _by_key(self, query: str, column: str):
        async def load(keys: list[str]) -> list[dict | None]:
            rows = await self.store.query(query, keys=list(dict.fromkeys(keys)))
            found = {r["key"]: r[column] for r in rows}
            return [found.get(k) for k in keys]

        return load

    def _per_key(self, query: str, column: str | None):
        async def load(keys: list[str]) -> list[Any]:
            rows = await self.store.query(query, keys=list(dict.fromkeys(keys)))
            if column is None:  # several rows per key: a {kind: n} map
                out: dict[str, dict] = defaultdict(dict)
                for r in rows:
                    out[r["key"]][r["kind"]] = r["n"]
                return [out.get(k, {}) for k in keys]
            found = {r["key"]: r[column] for r in rows}
            return [found.get(k, []) for k in keys]

        return load

    async def _models(self, names: list[str]) -> list[dict | None]:
        rows = await self.store.query("models_by_name", names=list(dict.fromkeys(names)))
        found = {r["name"]: {**r["m"], "n_neurons": r["n_neurons"]} for r in rows}
        return [found.get(n) for n in names]

    async def _edges(self, keys: list[EdgeKey]) -> list[list[dict]]:
        result: dict[EdgeKey, list[dict]] = {}
        groups = _grouped(keys, lambda k: (k.query, k.kinds, k.min_weight, k.order, k.cap))
        for (query, kinds, min_weight, order, cap), members in groups.items():
            rows = await self.store.query(
                query, keys=list(dict.fromkeys(m.key for m in members)),
                kinds=list(kinds) if kinds is not None else None,
                min_weight=min_weight, order=order, cap=cap)
            found = {r["key"]: r["edges"] for r in rows}
            for m in members:
                result[m] = found.get(m.key, [])
        return [result[k] for k in keys]

    async def _examples(self, keys: list[ExamplesKey]) -> list[list[dict]]:
        result: dict[ExamplesKey, list[dict]] = {}
        for (kind, after, limit), members in _grouped(keys, lambda k: (k.kind, k.after_rank, k.limit)).items():
            rows = await self.store.query("neuron_examples", keys=list(dict.fromkeys(m.key for m in members)),
                                          kind=kind, after_rank=after, limit=limit)
            found = {r["key"]: r["examples"] for r in rows}
            for m in members:
                result[m] = found.get(m.key, [])
        return [result[k] for k in keys]
