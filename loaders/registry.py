"""Which importer reads which source: a name -> function registry the importers fill themselves.

Each importer module registers its entry point with :func:`importer` (as SAELens names its
pretrained-SAE loaders); :mod:`loaders.importing` holds only the shared machinery, so nothing
imports back into it. :func:`import_source` loads the importer modules listed in
:data:`IMPORTER_MODULES` by name the first time a source is asked for.

    @importer("universal-neurons")
    async def import_universal_neurons(store, path, *, model=None, **options): ...

    summary = await import_source(store, "universal-neurons", "stats.csv", model="gpt2-small")
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Awaitable, Callable

from neurograph.errors import NeuroGraphError

Importer = Callable[..., Awaitable[dict[str, Any]]]

# The modules whose import registers an importer (loaded on first use, in this order).
IMPORTER_MODULES = ("loaders.neuroscope", "loaders.openai", "loaders.universal_neurons", "loaders.n2g_import")

_IMPORTERS: dict[str, tuple[Importer, dict[str, Any]]] = {}
_loaded = False


class UnknownSource(NeuroGraphError, ValueError):
    """``import_source`` was asked for a source it does not know."""


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def importer(*names: str, **fixed: Any) -> Callable[[Importer], Importer]:
    """Register the decorated coroutine as the importer of each of ``names``; ``fixed`` are
    keyword arguments passed with every call under that name (e.g. ``source="deepdecipher"``)."""
    def register(fn: Importer) -> Importer:
        for n in names:
            _IMPORTERS[_norm(n)] = (fn, dict(fixed))
        return fn
    return register


def _load() -> None:
    global _loaded
    if not _loaded:
        for mod in IMPORTER_MODULES:
            importlib.import_module(mod)
        _loaded = True


def sources() -> tuple[str, ...]:
    """Every registered source name, sorted."""
    _load()
    return tuple(sorted(_IMPORTERS))


async def import_source(store: Any, source: str, path: str | Path, *, model: str | None = None,
                        **options: Any) -> dict[str, Any]:
    """Import public interpretability data into the graph; returns summary counts.

    ``source`` is one of :func:`sources` (neuroscope, deepdecipher, openai, universal-neurons,
    n2g); ``path`` a local file or folder (layouts in each importer's docstring) or an
    ``http(s)://`` URL. Options: ``model_info`` (dict, JSON file, or ``"n_layers=12,d_mlp=3072"``),
    ``progress`` (bool), and per source: ``layer``/``neuron`` (single files), ``neurons`` (list of
    (layer, neuron) to fetch from a base URL), ``cache_dir``, ``vocab`` (token texts), ``k`` /
    ``head_k`` (Universal Neurons top-k).

        summary = await import_source(store, "universal-neurons", "stats.csv", model="gpt2-small")
        summary["neurons"]
    """
    _load()
    found = _IMPORTERS.get(_norm(source))
    if found is None:
        raise UnknownSource(f"unknown import source {source!r}: choose one of {', '.join(sources())}")
    fn, fixed = found
    return await fn(store, path, model=model, **fixed, **options)
