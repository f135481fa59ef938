"""What every resolver gets: the store, the settings and this request's DataLoaders.

    async def resolve(info: strawberry.Info[Context, None]) -> ...:
        row = await info.context.loaders.neuron.load(key)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import Settings
from ..store import Store
from .dataloaders import Loaders


@dataclass
class Context:
    """Per-request context; ``authorized`` is True when writes are allowed (see app.py)."""

    store: Store
    settings: Settings
    authorized: bool = False
    request: Any = None
    response: Any = None
    loaders: Loaders = field(init=False)
    memo: dict = field(default_factory=dict)  # per request: what resolvers work out once for a query

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.store)
