"""The HTTP API: GraphQL (Strawberry) and REST on one Starlette app, plus the static web UI.

    from neurograph.api import create_app, schema
    app = create_app()                      # uvicorn neurograph.api:app works too via create_app
    print(schema.as_str())                  # the SDL of graphql/schema.graphql
"""

from __future__ import annotations

from .app import create_app
from .context import Context
from .schema import build_schema, schema

__all__ = ["create_app", "schema", "build_schema", "Context"]
