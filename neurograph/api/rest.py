"""DeepDecipher-compatible REST API (stub; routes are filled in by the REST work)."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
