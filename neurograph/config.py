"""Settings, read from the environment (``NEUROGRAPH_*``, ``NEO4J_*``) with sane defaults.

    >>> s = Settings.from_env({"NEUROGRAPH_ENGINE": "neo4j", "NEO4J_URI": "bolt://localhost:7687"})
    >>> s.engine, s.neo4j_uri
    ('neo4j', 'bolt://localhost:7687')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from platformdirs import user_data_dir

ENGINES = ("falkordb", "neo4j")


def _default_data_dir() -> Path:
    return Path(user_data_dir("neurograph", appauthor=False))


@dataclass(frozen=True)
class Settings:
    engine: str = "falkordb"
    data_dir: Path = field(default_factory=_default_data_dir)
    graph: str = "neurograph"
    # Embedded FalkorDB: unix socket by default; a loopback TCP port only when asked for.
    falkordb_url: str | None = None  # an external FalkorDB (redis:// or unix://); None = embedded
    falkordb_port: int = 0
    # Where power users' Cypher runs for an external FalkorDB: a replica of it (the embedded
    # store starts its own replica)
    falkordb_readonly_url: str | None = None
    neo4j_uri: str = "bolt://localhost:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: str = "neurograph"
    neo4j_database: str = "neo4j"
    # API
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    cypher_timeout_ms: int = 5000
    cypher_max_rows: int = 1000
    cypher_max_bytes: int = 8 * 2**20
    # every HTTP request's time limit; its database queries stop with it
    request_timeout_ms: int = 30_000
    # operations in one batched GraphQL POST (a JSON array of requests)
    graphql_max_batch: int = 10
    # the model worker's fields (runText, neuronActivations, steer), per client
    model_requests_per_minute: int = 60
    # GraphQL answers kept on disk (pre-rendered neuron pages included); 0 turns it off
    page_cache_mb: int = 4096

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        s = cls()
        get = env.get
        engine = get("NEUROGRAPH_ENGINE", s.engine).lower()
        if engine not in ENGINES:
            raise ValueError(f"NEUROGRAPH_ENGINE={engine!r}: choose one of {', '.join(ENGINES)}")
        origins = tuple(o.strip() for o in get("NEUROGRAPH_CORS_ORIGINS", "").split(",") if o.strip())
        return replace(
            s,
            engine=engine,
            data_dir=Path(get("NEUROGRAPH_DATA_DIR", str(s.data_dir))).expanduser(),
            graph=get("NEUROGRAPH_GRAPH", s.graph),
            falkordb_url=get("NEUROGRAPH_FALKORDB_URL") or None,
            falkordb_port=int(get("NEUROGRAPH_FALKORDB_PORT", s.falkordb_port)),
            falkordb_readonly_url=get("NEUROGRAPH_FALKORDB_READONLY_URL") or None,
            neo4j_uri=get("NEO4J_URI", s.neo4j_uri),
            neo4j_user=get("NEO4J_USER", s.neo4j_user),
            neo4j_password=get("NEO4J_PASSWORD", s.neo4j_password),
            neo4j_database=get("NEO4J_DATABASE", s.neo4j_database),
            api_key=get("NEUROGRAPH_API_KEY") or None,
            cors_origins=origins,
            cypher_timeout_ms=int(get("NEUROGRAPH_CYPHER_TIMEOUT_MS", s.cypher_timeout_ms)),
            cypher_max_rows=int(get("NEUROGRAPH_CYPHER_MAX_ROWS", s.cypher_max_rows)),
            cypher_max_bytes=int(get("NEUROGRAPH_CYPHER_MAX_BYTES", s.cypher_max_bytes)),
            request_timeout_ms=int(get("NEUROGRAPH_REQUEST_TIMEOUT_MS", s.request_timeout_ms)),
            graphql_max_batch=int(get("NEUROGRAPH_GRAPHQL_MAX_BATCH", s.graphql_max_batch)),
            model_requests_per_minute=int(get("NEUROGRAPH_MODEL_REQUESTS_PER_MINUTE", s.model_requests_per_minute)),
            page_cache_mb=int(get("NEUROGRAPH_PAGE_CACHE_MB", s.page_cache_mb)),
        )

    def with_(self, **changes: object) -> "Settings":
        return replace(self, **changes)
