"""Graph stores: one interface (``Store``), two engines (FalkorDB embedded, Neo4j).

    from neurograph.store import open_store
    store = await open_store()          # engine from NEUROGRAPH_ENGINE, default falkordb
"""

from __future__ import annotations

from ..config import Settings
from .base import Store, refuse_writes
from .embedded import EmbeddedFalkorDB


async def open_store(settings: Settings | None = None, *, start: bool = True, schema: bool = True) -> Store:
    settings = settings or Settings.from_env()
    if settings.engine == "neo4j":
        from .neo4j import Neo4jStore

        store: Store = await Neo4jStore.connect(settings)
    else:
        from .falkor import FalkorStore

        store = await FalkorStore.connect(settings, start=start)
    if schema:
        await store.ensure_schema()
    return store


__all__ = ["Store", "EmbeddedFalkorDB", "open_store", "refuse_writes"]
