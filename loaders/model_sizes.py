"""Sizes of well-known models, by their TransformerLens names, so an import of partial data
(a CSV of some neurons) never has to guess them.

Figures from TransformerLens' model properties table
(``docs/source/_static/model_properties_table.jsonl``, commit 4cd36aa, 2026-07-22):
n_layers, d_mlp, d_model, n_heads, d_vocab, act_fn. Pythia's ``-deduped``, ``-v0`` and
``-seedN`` variants share their base model's sizes, as do the stanford-gpt2 seeds a-e.

    >>> known_sizes("stanford-gpt2-medium-a")["d_mlp"]
    4096
    >>> known_sizes("pythia-70m-deduped-v0")["n_layers"]
    6
    >>> known_sizes("my-model") is None
    True
"""

from __future__ import annotations

import re
from typing import Any

_FIELDS = ("n_layers", "d_mlp", "d_model", "n_heads", "d_vocab", "act_fn")

# name: (n_layers, d_mlp, d_model, n_heads, d_vocab, act_fn)
_TABLE: dict[str, tuple] = {
    "gpt2-small": (12, 3072, 768, 12, 50257, "gelu_new"),
    "gpt2-medium": (24, 4096, 1024, 16, 50257, "gelu_new"),
    "gpt2-large": (36, 5120, 1280, 20, 50257, "gelu_new"),
    "gpt2-xl": (48, 6400, 1600, 25, 50257, "gelu_new"),
    "distilgpt2": (6, 3072, 768, 12, 50257, "gelu_new"),
    "pythia-14m": (6, 512, 128, 4, 50304, "gelu"),
    "pythia-31m": (6, 1024, 256, 8, 50304, "gelu"),
    "pythia-70m": (6, 2048, 512, 8, 50304, "gelu"),
    "pythia-160m": (12, 3072, 768, 12, 50304, "gelu"),
    "pythia-410m": (24, 4096, 1024, 16, 50304, "gelu"),
    "pythia-1b": (16, 8192, 2048, 8, 50304, "gelu"),
    "pythia-1.4b": (24, 8192, 2048, 16, 50304, "gelu"),
    "pythia-2.8b": (32, 10240, 2560, 32, 50304, "gelu"),
    "pythia-6.9b": (32, 16384, 4096, 32, 50432, "gelu"),
    "pythia-12b": (36, 20480, 5120, 40, 50688, "gelu"),
    "gelu-1l": (1, 2048, 512, 8, 48262, "gelu"),
    "gelu-2l": (2, 2048, 512, 8, 48262, "gelu"),
    "gelu-3l": (3, 2048, 512, 8, 48262, "gelu"),
    "gelu-4l": (4, 2048, 512, 8, 48262, "gelu"),
    "solu-1l": (1, 2048, 512, 8, 48262, "solu_ln"),
    "solu-2l": (2, 2048, 512, 8, 48262, "solu_ln"),
    "solu-3l": (3, 2048, 512, 8, 48262, "solu_ln"),
    "solu-4l": (4, 2048, 512, 8, 48262, "solu_ln"),
    "solu-6l": (6, 3072, 768, 12, 48262, "solu_ln"),
    "solu-8l": (8, 4096, 1024, 16, 48262, "solu_ln"),
    "solu-10l": (10, 5120, 1280, 20, 48262, "solu_ln"),
    "solu-12l": (12, 6144, 1536, 24, 48262, "solu_ln"),
    "solu-1l-wiki": (1, 2048, 512, 8, 48262, "solu_ln"),
    "solu-4l-wiki": (4, 2048, 512, 8, 48262, "solu_ln"),
    "solu-1l-pile": (1, 4096, 1024, 16, 50278, "solu_ln"),
    "solu-2l-pile": (2, 2944, 736, 11, 50278, "solu_ln"),
    "solu-4l-pile": (4, 2048, 512, 8, 50278, "solu_ln"),
    "solu-6l-pile": (6, 3072, 768, 12, 50278, "solu_ln"),
    "solu-8l-pile": (8, 4096, 1024, 16, 50278, "solu_ln"),
    "solu-10l-pile": (10, 5120, 1280, 20, 50278, "solu_ln"),
    "solu-12l-pile": (12, 6144, 1536, 24, 50278, "solu_ln"),
}
for _size, _row in (("small", _TABLE["gpt2-small"]), ("medium", _TABLE["gpt2-medium"])):
    for _seed in "abcde":
        _TABLE[f"stanford-gpt2-{_size}-{_seed}"] = _row

_ALIASES = {"gpt2": "gpt2-small", "distillgpt2": "distilgpt2", "distil-gpt2": "distilgpt2",
            "pythia": "pythia-70m", "solu-1l-old": "solu-1l-pile", "solu-2l-old": "solu-2l-pile",
            "solu-4l-old": "solu-4l-pile", "solu-6l-old": "solu-6l-pile", "solu-8l-old": "solu-8l-pile",
            "solu-10l-old": "solu-10l-pile", "solu-12l-old": "solu-12l-pile"}
_PYTHIA_VARIANT = re.compile(r"^(pythia-[0-9.]+[mb])(?:-deduped)?(?:-v0)?(?:-seed\d+)?$")


def canonical_name(name: str) -> str | None:
    """The table's name for ``name`` (an alias or a Pythia variant), or None when unknown."""
    n = name.strip().lower()
    n = _ALIASES.get(n, n)
    if n in _TABLE:
        return n
    m = _PYTHIA_VARIANT.match(n)
    return m.group(1) if m and m.group(1) in _TABLE else None


def known_sizes(name: str) -> dict[str, Any] | None:
    """``{n_layers, d_mlp, d_model, n_heads, d_vocab, act_fn}`` of a well-known model, else None."""
    c = canonical_name(name)
    return dict(zip(_FIELDS, _TABLE[c])) if c else None
