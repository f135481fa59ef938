"""Neo4j 5 engine, the production store, through the official async driver over Bolt.

    store = await Neo4jStore.connect(Settings.from_env({"NEUROGRAPH_ENGINE": "neo4j"}))
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..errors import QueryError, StoreUnavailable
from .base import Store


def plain(value: Any) -> Any:
    from neo4j.graph import Node, Path, Relationship

    if isinstance(value, Node):
        return dict(value.items())
    if isinstance(value, Relationship):
        return {**dict(value.items()), "_type": value.type}
    if isinstance(value, Path):
        return {"nodes": [plain(n) for n in value.nodes], "edges": [plain(r) for r in value.relationships]}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


class Neo4jStore(Store):
    engine = "neo4j"

    def __init__(self, driver: Any, database: str) -> None:
        super().__init__()
        self.driver = driver
        self.database = database

    @classmethod
    async def connect(cls, settings: Settings) -> "Neo4jStore":
        import neo4j
        from neo4j.exceptions import AuthError, ConfigurationError, ServiceUnavailable

        try:
            driver = neo4j.AsyncGraphDatabase.driver(
                settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password))
        except (ValueError, ConfigurationError) as e:
            raise StoreUnavailable(f"bad Neo4j URI {settings.neo4j_uri!r}: {e}") from e
        try:
            await driver.verify_connectivity()
        except AuthError as e:
            await driver.close()
            raise StoreUnavailable(f"Neo4j at {settings.neo4j_uri} refused the credentials of user "
                                   f"{settings.neo4j_user!r}") from e
        except (ServiceUnavailable, OSError) as e:
            await driver.close()
            raise StoreUnavailable(f"no Neo4j reachable at {settings.neo4j_uri}: {e}") from e
        return cls(driver, settings.neo4j_database)

    async def _run(self, text: str, params: dict[str, Any], *, write: bool, timeout_ms: int | None) -> list[dict]:
        import neo4j
        from neo4j.exceptions import ClientError

        query = neo4j.Query(text, timeout=timeout_ms / 1000 if timeout_ms else None)

        async def work(tx: Any) -> list[dict]:
            result = await tx.run(query, params)
            return [{k: plain(v) for k, v in record.items()} async for record in result]

        try:
            async with self.driver.session(database=self.database) as session:
                # READ access mode: the server itself refuses writes on the read path.
                if write:
                    return await session.execute_write(work)
                return await session.execute_read(work)
        except ClientError as e:
            raise QueryError(f"neo4j: {e.message}") from e

    async def _transient(self, exc: BaseException) -> bool:
        from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

        return isinstance(exc, (ServiceUnavailable, SessionExpired, TransientError))

    def _wrap(self, exc: BaseException) -> Exception:
        from neo4j.exceptions import ServiceUnavailable

        if isinstance(exc, (ServiceUnavailable, OSError)):
            return StoreUnavailable(f"Neo4j is not reachable: {exc}")
        return super()._wrap(exc)

    async def ensure_schema(self) -> None:
        for stmt in self.queries.schema("neo4j"):
            await self.run(stmt, write=True)

    async def read_stamp(self) -> str:
        rows = await self.query("graph_stamp.neo4j")
        return rows[0]["stamp"] if rows else ""

    async def _write_stamp(self, stamp: str) -> None:
        q = self.queries["bump_graph_stamp.neo4j"]
        await self._run(q.text, {"stamp": stamp}, write=True, timeout_ms=None)

    async def _drop(self) -> None:
        await self.run("MATCH (n) CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS", write=True)

    async def close(self) -> None:
        await self.driver.close()
