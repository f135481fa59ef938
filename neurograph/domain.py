"""The graph model: node labels, relationship types, edge kinds and stable keys.

Every node has a unique string property ``key``; every load is a ``MERGE`` on it, so
loads are idempotent and can be re-run after a crash.

    >>> neuron_key("gpt2", 3, 17)
    'gpt2/3/17'
    >>> parse_neuron_key("gpt2/3/17")
    ('gpt2', 3, 17)

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
    (Neuron)-[:SIMILAR {weight}]->(Neuron)                     N2G token-set overlap
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidKey

NODE_LABELS = ("Model", "Layer", "Neuron", "Head", "Token", "Example", "Explanation", "PatternNode")

# Relationship type -> the edge kinds it carries (None: it has no kind).
EDGE_KINDS: dict[str, tuple[str, ...] | None] = {
    "COMPOSES": ("in_in", "in_out", "out_in", "out_out", "virtual", "gate_virtual"),
    "CORRELATES": ("pearson",),
    "HEAD_COMPOSES": ("K", "Q", "V", "O"),
    "TOKEN_EFFECT": ("input", "output", "activation"),
    "ACTIVATES_ON": ("max", "min", "random"),
    "SIMILAR": ("n2g",),
}
# The edges topology analyses by default: what flows between neurons, the residual-path
# virtual weights (plain and gated) and the activation correlations. The cosine kinds (in_in,
# out_out, ...) say two neurons read or write alike, which is similarity rather than connection,
# and would quadruple the graph.
TOPOLOGY_KINDS = ("COMPOSES:virtual", "COMPOSES:gate_virtual", "CORRELATES")

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


_NEURON_KEY = re.compile(r"^([A-Za-z0-9_.\-]+)/(\d+)/(\d+)$")


def parse_neuron_key(key: str) -> tuple[str, int, int]:
    m = _NEURON_KEY.match(key or "")
    if not m:
        raise InvalidKey(f"not a neuron key: {key!r} (expected 'model/layer/index')")
    return m.group(1), int(m.group(2)), int(m.group(3))


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
