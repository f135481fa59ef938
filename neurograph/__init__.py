"""NeuroGraph: a transformer's neurons, heads, tokens and examples as one served graph."""

from __future__ import annotations

__version__ = "0.1.0"

from .config import Settings
from .domain import ModelInfo, head_key, layer_key, neuron_key, parse_neuron_key, token_key
from .errors import InputFileError, InvalidKey, NeuroGraphError, NotFound, QueryError, StoreUnavailable

__all__ = [
    "Settings", "ModelInfo", "neuron_key", "layer_key", "head_key", "token_key", "parse_neuron_key",
    "NeuroGraphError", "InvalidKey", "NotFound", "QueryError", "StoreUnavailable", "InputFileError",
]
