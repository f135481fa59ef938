"""The graph model: node labels, relationship types, edge kinds and stable keys.

Every node has a unique string property ``key``; every load is a ``MERGE`` on it, so
loads are idempotent and can be re-run after a crash.

    >>> neuron_key("gpt2", 3, 17)
    'gpt2/3/17'
    >>> parse_neuron_key("gpt2/3/17")
    ('gpt2', 3, 17)
    >>> parse_key("gpt2/L3H5")
    UnitKey(label='Head', key='gpt2/L3H5', model='gpt2', layer=3, index=5)
    >>> neuron_props({"variance": 0.5, "quantile_boundaries": [0.1, 0.9]})
    {'var': 0.5, 'quantiles': [0.1, 0.9]}

Nodes
    Model {key=name, name, n_layers, d_mlp, d_model, n_heads, d_vocab, act_fn, source, dataset, n_tokens}
    Layer {key=model/L{layer}, model, layer, n_neurons}
    Neuron {key=model/layer/index, model, layer, index, + activation stats, histogram, N2G scores}
    Head {key=model/L{layer}H{head}, model, layer, head}
    Token {key=model/t{id}, model, id, text}
    Example {key=model/x{data_index} or model/h{hash}, model, tokens[], data_index, source}
    Explanation {key=model/layer/index/e{hash}, source, text, score, ...}
    PatternNode {key=model/layer/index/p{i}, token, depth, activation, role, is_end}

Relationships (all weighted ones carry ``weight`` and ``rank`` within their kind)
    (Model)-[:HAS_LAYER]->(Layer)-[:HAS_NEURON]->(Neuron), (Layer)-[:HAS_HEAD]->(Head)
    (Neuron)-[:COMPOSES {kind, weight, rank}]->(Neuron)       weight-based, upstream → downstream
    (Neuron)-[:CORRELATES {weight, rank}]->(Neuron)           activation Pearson
    (Neuron)-[:HEAD_COMPOSES {kind: K|Q|V|O, weight}]->(Head) or (Head)-[...]->(Neuron)
    (Neuron)-[:TOKEN_EFFECT {kind, weight, rank}]->(Token)    input / output / activation
    (Neuron)-[:ACTIVATES_ON {kind: max|min|random, rank, activations[], max_activation,
                             min_activation, pivot}]->(Example)
    (Neuron)-[:EXPLAINED_BY]->(Explanation)
    (Neuron)-[:HAS_PATTERN]->(PatternNode)-[:PATTERN_NEXT]->(PatternNode)
    (PatternNode)-[:MATCHES {role: activating|important}]->(Token)
    (Model)-[:HAS_TRACE]->(Trace {key, model, prompt, target, target_id, target_logit})
    (Trace)-[:HAS_NODE]->(TraceNode {key, kind: token|neuron|logit, position, activation, influence})
    (TraceNode)-[:INSTANCE_OF]->(Neuron|Token), (TraceNode)-[:EFFECT {weight}]->(TraceNode)
    (Neuron)-[:ATTRIBUTES_TO {kind: neuron|logit, mean, abs_mean, count, prompts, weight}]->(Neuron|Token)
    (Neuron)-[:SIMILAR {weight}]->(Neuron)                     N2G token-set overlap
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, NamedTuple

from .errors import InvalidKey

NODE_LABELS = ("Model", "Layer", "Neuron", "Head", "Token", "Example", "Explanation", "PatternNode", "Trace",
               "TraceNode")

# Relationship type -> the edge kinds it carries (None: it has no kind).
EDGE_KINDS: dict[str, tuple[str, ...] | None] = {
    "COMPOSES": ("in_in", "in_out", "out_in", "out_out", "virtual", "gate_virtual"),
    "CORRELATES": ("pearson",),
    "HEAD_COMPOSES": ("K", "Q", "V", "O"),
    "TOKEN_EFFECT": ("input", "output", "activation"),
    "ACTIVATES_ON": ("max", "min", "random"),
    "SIMILAR": ("n2g",),
    "ATTRIBUTES_TO": ("neuron", "logit"),
}
# The edges topology analyses by default: what flows between neurons, the residual-path
# virtual weights (plain and gated) and the activation correlations. The cosine kinds (in_in,
# out_out, ...) say two neurons read or write alike, which is similarity rather than connection,
# and would quadruple the graph.
TOPOLOGY_KINDS = ("COMPOSES:virtual", "COMPOSES:gate_virtual", "CORRELATES")
# Corpus circuits (what neurons do to each other on real prompts, rather than what the weights
# allow) get a topology of their own, stored beside the other as circuit_role, circuit_community, ...
CIRCUIT_TOPOLOGY_KINDS = ("ATTRIBUTES_TO:neuron",)
CIRCUIT_TOPOLOGY_PREFIX = "circuit_"

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidKey(f"invalid model name {name!r}: use letters, digits, '_', '.', '-'")
    return name


def model_key(model: str) -> str:
    return check_model_name(model)


def layer_key(model: str, layer: int) -> str:
    return f"{check_model_name(model)}/L{int(layer)}"


def neuron_key(model: str, layer: int, index: int) -> str:
    return f"{check_model_name(model)}/{int(layer)}/{int(index)}"


def head_key(model: str, layer: int, head: int) -> str:
    return f"{check_model_name(model)}/L{int(layer)}H{int(head)}"


def token_key(model: str, token_id: int) -> str:
    return f"{check_model_name(model)}/t{int(token_id)}"


def example_key(model: str, data_index: int | None = None, tokens: list[str] | None = None) -> str:
    """A context is keyed by its corpus position when known, else by a hash of its tokens."""
    if data_index is not None:
        return f"{check_model_name(model)}/x{int(data_index)}"
    if tokens is None:
        raise ValueError("example_key needs data_index or tokens")
    digest = hashlib.sha1("\x1f".join(tokens).encode()).hexdigest()[:16]
    return f"{check_model_name(model)}/h{digest}"


def explanation_key(model: str, layer: int, index: int, source: str, text: str) -> str:
    digest = hashlib.sha1(f"{source}\x1f{text}".encode()).hexdigest()[:12]
    return f"{neuron_key(model, layer, index)}/e{digest}"


def pattern_key(model: str, layer: int, index: int, node: int) -> str:
    return f"{neuron_key(model, layer, index)}/p{int(node)}"


_KEYS = (  # label, pattern; the model name is everything before the unit's own part
    ("Neuron", re.compile(r"^([A-Za-z0-9_.\-]+)/(\d+)/(\d+)$")),
    ("Head", re.compile(r"^([A-Za-z0-9_.\-]+)/L(\d+)H(\d+)$")),
    ("Token", re.compile(r"^([A-Za-z0-9_.\-]+)/t(\d+)$")),
)


class UnitKey(NamedTuple):
    """What a unit's key says: its label, model and position (a token: its id as ``index``)."""

    label: str
    key: str
    model: str
    layer: int | None
    index: int


def parse_key(key: str) -> UnitKey | None:
    """The neuron, head or token a key names (None: not one of those keys). The one parser of
    unit keys: every ``*_key`` function above writes what it reads.

        parse_key("gpt2/3/17")   # UnitKey('Neuron', 'gpt2/3/17', 'gpt2', 3, 17)
        parse_key("gpt2/t50256") # UnitKey('Token', 'gpt2/t50256', 'gpt2', None, 50256)
    """
    for label, pattern in _KEYS:
        m = pattern.match(key or "")
        if m:
            if label == "Token":
                return UnitKey(label, key, m.group(1), None, int(m.group(2)))
            return UnitKey(label, key, m.group(1), int(m.group(2)), int(m.group(3)))
    return None


def parse_neuron_key(key: str) -> tuple[str, int, int]:
    unit = parse_key(key)
    if unit is None or unit.label != "Neuron":
        raise InvalidKey(f"not a neuron key: {key!r} (expected 'model/layer/index')")
    return unit.model, unit.layer, unit.index  # type: ignore[return-value]


# One vocabulary for neuron properties: the names sources use for the same statistic (OpenAI's
# NeuronRecord, Universal Neurons' CSV columns) -> the name the graph stores and the API reads.
NEURON_PROP_ALIASES: dict[str, str] = {
    "variance": "var", "skewness": "skew", "kurtosis": "kurt",
    "quantile_boundaries": "quantiles",
    "sparsity": "frac_active",  # Universal Neurons: the fraction of tokens the neuron fires on
    "max_activation": "max", "min_activation": "min",
}
# The store queries whose rows carry neuron properties (``{key, ..., props: {...}}``).
NEURON_PROP_QUERIES = frozenset({"upsert_neurons", "set_neuron_props"})


def neuron_props(props: dict[str, Any]) -> dict[str, Any]:
    """``props`` under the graph's names (NEURON_PROP_ALIASES); where a source gives both
    names, the graph's own wins."""
    if not any(k in NEURON_PROP_ALIASES for k in props):
        return props
    out = {NEURON_PROP_ALIASES.get(k, k): v for k, v in props.items() if k in NEURON_PROP_ALIASES}
    out.update((k, v) for k, v in props.items() if k not in NEURON_PROP_ALIASES)
    return out


def neuron_prop_rows(rows: Iterable[dict]) -> Iterator[dict]:
    """Rows of a NEURON_PROP_QUERIES query with their ``props`` under the graph's names (lazily:
    rows may be a generator of millions)."""
    for row in rows:
        props = row.get("props")
        yield {**row, "props": neuron_props(props)} if props and any(k in NEURON_PROP_ALIASES for k in props) \
            else row


@dataclass
class ModelInfo:
    """What the graph records about a model (weights may be absent: imported-only models)."""

    name: str
    n_layers: int
    d_mlp: int
    d_model: int | None = None
    n_heads: int | None = None
    d_vocab: int | None = None
    act_fn: str | None = None
    source: str = "computed"
    dataset: str | None = None
    n_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "key": model_key(self.name), "name": self.name, "n_layers": self.n_layers,
            "d_mlp": self.d_mlp, "d_model": self.d_model, "n_heads": self.n_heads,
            "d_vocab": self.d_vocab, "act_fn": self.act_fn, "source": self.source,
            "dataset": self.dataset, "n_tokens": self.n_tokens,
        }
