"""A small GraphQL client for notebooks and scripts (httpx).

    from neurograph.client import Client
    c = Client("http://127.0.0.1:8000")
    n = c.neuron("gpt2", 3, 17)                 # n.stats["kurt"], n.explanations[0]["text"]
    for ex in c.examples("gpt2", 3, 17, first=3):
        print(ex.tokens[ex.pivot], ex.activations[ex.pivot])
    g = c.neighborhood_graph("gpt2/3/17", depth=2)   # networkx.DiGraph, weights on edges
    c.cypher("MATCH (n:Neuron) RETURN n.key AS key LIMIT 3").rows
    c.available_stats("gpt2")                   # built-in and imported columns, with ranges
    c.top_neurons("gpt2", "kurt", first=10)     # ranked by any of them
    c.query("{ models { name } }")               # any GraphQL, returns `data`

``AsyncClient`` has the same methods as coroutines (``await c.neuron(...)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from .errors import NeuroGraphError

NEURON_FIELDS = """
  id key model layer index interest role community props
  stats { mean var skew kurt fracActive max min quantiles quantileLevels }
  histogram { edges counts }
  explanations { text source score }
"""
EXAMPLE_FIELDS = "key rank tokens activations pivot maxActivation minActivation dataIndex"


class GraphQLRequestError(NeuroGraphError):
    """The server answered with GraphQL errors; ``errors`` holds them as returned."""

    def __init__(self, errors: list[dict]) -> None:
        super().__init__("; ".join(e.get("message", str(e)) for e in errors))
        self.errors = errors


@dataclass
class Neuron:
    key: str
    model: str
    layer: int
    index: int
    stats: dict[str, Any]
    histogram: dict[str, list[float]] | None
    explanations: list[dict]
    props: dict[str, Any]
    id: str = ""

    @classmethod
    def of(cls, d: dict) -> "Neuron":
        return cls(key=d["key"], model=d["model"], layer=d["layer"], index=d["index"], stats=d["stats"],
                   histogram=d.get("histogram"), explanations=d.get("explanations") or [],
                   props=d.get("props") or {}, id=d.get("id", ""))


@dataclass
class Example:
    key: str
    rank: int
    tokens: list[str]
    activations: list[float]
    pivot: int | None
    max_activation: float | None = None
    min_activation: float | None = None
    data_index: int | None = None

    @classmethod
    def of(cls, d: dict) -> "Example":
        return cls(key=d["key"], rank=d["rank"], tokens=d["tokens"], activations=d["activations"],
                   pivot=d.get("pivot"), max_activation=d.get("maxActivation"),
                   min_activation=d.get("minActivation"), data_index=d.get("dataIndex"))


@dataclass
class Subgraph:
    nodes: list[dict] = field(default_factory=list)
    edges: list[dict] = field(default_factory=list)
    truncated: bool = False

    def to_networkx(self):  # -> networkx.DiGraph
        import networkx as nx

        g = nx.DiGraph()
        for n in self.nodes:
            g.add_node(n["key"], **{k: v for k, v in n.items() if k != "key"})
        for e in self.edges:
            g.add_edge(e["source"], e["target"], weight=e["weight"], kind=e.get("kind"), type=e.get("type"))
        return g


@dataclass
class CypherResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]


class _Operations:
    """The operations both clients share: (query text, variables, how to read the answer)."""

    @staticmethod
    def _neuron(model: str, layer: int, index: int):
        q = f"query($m: String!, $l: Int!, $i: Int!) {{ neuron(model: $m, layer: $l, index: $i) {{ {NEURON_FIELDS} }} }}"
        return q, {"m": model, "l": layer, "i": index}, lambda d: Neuron.of(d["neuron"])

    @staticmethod
    def _examples(model: str, layer: int, index: int, kind: str = "MAX", first: int = 10):
        q = ("query($m: String!, $l: Int!, $i: Int!, $k: ExampleKind!, $f: Int!) { neuron(model: $m, layer: $l, "
             f"index: $i) {{ examples(kind: $k, first: $f) {{ edges {{ node {{ {EXAMPLE_FIELDS} }} }} }} }} }}")
        return (q, {"m": model, "l": layer, "i": index, "k": kind.upper(), "f": first},
                lambda d: [Example.of(e["node"]) for e in d["neuron"]["examples"]["edges"]])

    @staticmethod
    def _neighborhood(id: str, depth: int = 1, kinds: list[str] | None = None, min_weight: float | None = None,
                      per_node: int = 10, max_nodes: int = 150):
        q = ("query($id: ID!, $d: Int!, $k: [String!], $w: Float, $p: Int!, $m: Int!) { neighborhood(id: $id, "
             "depth: $d, kinds: $k, minWeight: $w, perNode: $p, maxNodes: $m) { truncated "
             "nodes { id key label model layer index title } edges { source target type kind weight } } }")
        return (q, {"id": id, "d": depth, "k": kinds, "w": min_weight, "p": per_node, "m": max_nodes},
                lambda d: Subgraph(d["neighborhood"]["nodes"], d["neighborhood"]["edges"],
                                   d["neighborhood"]["truncated"]))

    @staticmethod
    def _available_stats(model: str):
        q = "query($m: String!) { model(name: $m) { availableStats { name stat count min max } } }"
        return q, {"m": model}, lambda d: d["model"]["availableStats"]

    @staticmethod
    def _top_neurons(model: str, prop: str, first: int = 20, layer: int | None = None, ascending: bool = False):
        q = ("query($m: String!, $p: String!, $f: Int!, $l: Int, $d: SortDirection!) { model(name: $m) { "
             f"interesting(prop: $p, first: $f, layer: $l, direction: $d) {{ {NEURON_FIELDS} }} }} }}")
        return (q, {"m": model, "p": prop, "f": first, "l": layer, "d": "ASC" if ascending else "DESC"},
                lambda d: [Neuron.of(n) for n in d["model"]["interesting"]])

    @staticmethod
    def _cypher(query: str, params: dict | None = None):
        q = "query($q: String!, $p: JSON) { cypher(query: $q, params: $p) { columns rows truncated } }"
        return q, {"q": query, "p": params}, lambda d: CypherResult(**d["cypher"])

    @staticmethod
    def _read(response: httpx.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            response.raise_for_status()
            raise GraphQLRequestError([{"message": f"HTTP {response.status_code}: not JSON"}]) from None
        if body.get("errors"):
            raise GraphQLRequestError(body["errors"])
        if response.status_code >= 400:
            response.raise_for_status()
        return body["data"]


class Client(_Operations):
    """Blocking client: ``Client("http://127.0.0.1:8000", api_key=None)``.

        c = Client("http://127.0.0.1:8000")
        c.neuron("synth", 1, 2).stats["kurt"]
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", *, api_key: str | None = None, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/") + ("" if url.rstrip("/").endswith("/graphql") else "/graphql")
        headers = {"x-api-key": api_key} if api_key else {}
        self.http = httpx.Client(headers=headers, timeout=timeout, transport=transport)

    def query(self, text: str, variables: dict[str, Any] | None = None) -> dict:
        """Run any GraphQL operation; returns ``data`` or raises GraphQLRequestError."""
        return self._read(self.http.post(self.url, json={"query": text, "variables": variables or {}}))

    def _do(self, op: tuple) -> Any:
        text, variables, read = op
        return read(self.query(text, variables))

    def neuron(self, model: str, layer: int, index: int) -> Neuron:
        return self._do(self._neuron(model, layer, index))

    def examples(self, model: str, layer: int, index: int, kind: str = "MAX", first: int = 10) -> list[Example]:
        return self._do(self._examples(model, layer, index, kind, first))

    def neighborhood(self, id: str, depth: int = 1, kinds: list[str] | None = None,
                     min_weight: float | None = None, per_node: int = 10, max_nodes: int = 150) -> Subgraph:
        """At most ``max_nodes`` units (the server allows 2,000); ``truncated`` says when cut."""
        return self._do(self._neighborhood(id, depth, kinds, min_weight, per_node, max_nodes))

    def neighborhood_graph(self, id: str, depth: int = 1, kinds: list[str] | None = None,
                           min_weight: float | None = None, per_node: int = 10,
                           max_nodes: int = 150):  # -> networkx.DiGraph
        return self.neighborhood(id, depth, kinds, min_weight, per_node, max_nodes).to_networkx()

    def available_stats(self, model: str) -> list[dict]:
        """The numeric columns a model's neurons carry (built-in and imported): name, stat, count, min, max."""
        return self._do(self._available_stats(model))

    def top_neurons(self, model: str, prop: str, first: int = 20, layer: int | None = None,
                    ascending: bool = False) -> list[Neuron]:
        """The neurons with the highest (lowest) value of any column from ``available_stats``."""
        return self._do(self._top_neurons(model, prop, first, layer, ascending))

    def cypher(self, query: str, params: dict | None = None) -> CypherResult:
        return self._do(self._cypher(query, params))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Operations):
    """The same as Client with coroutines: ``await AsyncClient(url).neuron("synth", 1, 2)``.

        async with AsyncClient("http://127.0.0.1:8000") as c:
            g = await c.neighborhood_graph("synth/1/2", depth=2)
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", *, api_key: str | None = None, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/") + ("" if url.rstrip("/").endswith("/graphql") else "/graphql")
        headers = {"x-api-key": api_key} if api_key else {}
        self.http = httpx.AsyncClient(headers=headers, timeout=timeout, transport=transport)

    async def query(self, text: str, variables: dict[str, Any] | None = None) -> dict:
        return self._read(await self.http.post(self.url, json={"query": text, "variables": variables or {}}))

    async def _do(self, op: tuple) -> Any:
        text, variables, read = op
        return read(await self.query(text, variables))

    async def neuron(self, model: str, layer: int, index: int) -> Neuron:
        return await self._do(self._neuron(model, layer, index))

    async def examples(self, model: str, layer: int, index: int, kind: str = "MAX", first: int = 10) -> list[Example]:
        return await self._do(self._examples(model, layer, index, kind, first))

    async def neighborhood(self, id: str, depth: int = 1, kinds: list[str] | None = None,
                           min_weight: float | None = None, per_node: int = 10, max_nodes: int = 150) -> Subgraph:
        return await self._do(self._neighborhood(id, depth, kinds, min_weight, per_node, max_nodes))

    async def neighborhood_graph(self, id: str, depth: int = 1, kinds: list[str] | None = None,
                                 min_weight: float | None = None, per_node: int = 10, max_nodes: int = 150):
        return (await self.neighborhood(id, depth, kinds, min_weight, per_node, max_nodes)).to_networkx()

    async def available_stats(self, model: str) -> list[dict]:
        """The numeric columns a model's neurons carry (built-in and imported): name, stat, count, min, max."""
        return await self._do(self._available_stats(model))

    async def top_neurons(self, model: str, prop: str, first: int = 20, layer: int | None = None,
                    ascending: bool = False) -> list[Neuron]:
        """The neurons with the highest (lowest) value of any column from ``available_stats``."""
        return await self._do(self._top_neurons(model, prop, first, layer, ascending))

    async def cypher(self, query: str, params: dict | None = None) -> CypherResult:
        return await self._do(self._cypher(query, params))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
