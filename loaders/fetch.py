"""HTTP fetching for the importers: retries with backoff, a rate limit, an on-disk cache.

Every successful download is kept under the cache folder (``$NEUROGRAPH_CACHE_DIR`` or
the user cache dir), named by a hash of its URL, and written atomically: a second import,
or one resumed after an interruption, reads the cache and sends nothing. A 404 is final
(:class:`FetchError` with ``status=404``); timeouts, connection errors, 429 and 5xx are
retried with exponential backoff.

    async with Fetcher() as f:
        data = await f.get_json("https://deepdecipher.org/api/solu-1l/neuroscope/0/5")
        tree = await f.mirror("https://openaipublic.blob.core.windows.net/neuron-explainer/data",
                              ["collated-activations/0/1.json"])
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

import httpx

from neurograph.errors import NeuroGraphError


class FetchError(NeuroGraphError):
    """A download that failed for good; ``status`` is the HTTP status when there was one."""

    def __init__(self, url: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.status = status


def default_cache_dir() -> Path:
    env = os.environ.get("NEUROGRAPH_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("neurograph", appauthor=False)) / "http"


class Fetcher:
    """Polite, cached HTTP GETs.

        async with Fetcher(cache_dir, rate=5.0) as f:
            path = await f.get_file(url, suffix=".json")   # local copy of url
    """

    def __init__(self, cache_dir: str | Path | None = None, *, retries: int = 4, backoff: float = 0.5,
                 rate: float = 5.0, timeout: float = 30.0, client: httpx.AsyncClient | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.retries = retries
        self.backoff = backoff
        self.min_interval = 1.0 / rate if rate > 0 else 0.0
        self._client = client
        self._own_client = client is None
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._last = 0.0
        self.requests = 0  # sent over the network (cache hits do not count)

    async def __aenter__(self) -> "Fetcher":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._client is not None and self._own_client:
            await self._client.aclose()
            self._client = None

    def cache_path(self, url: str, suffix: str = "") -> Path:
        digest = hashlib.sha256(url.encode()).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest[2:]}{suffix}"

    async def _wait_turn(self) -> None:
        # A simple rate limit: at most `rate` requests a second from this fetcher.
        async with self._lock:
            wait = self._last + self.min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last = time.monotonic()

    async def _download(self, url: str) -> bytes:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=True)
        delay = self.backoff
        last: str = ""
        for attempt in range(self.retries + 1):
            await self._wait_turn()
            self.requests += 1
            try:
                resp = await self._client.get(url)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    return resp.content
                if resp.status_code != 429 and resp.status_code < 500:
                    raise FetchError(url, f"HTTP {resp.status_code}", resp.status_code)
                last = f"HTTP {resp.status_code}"
            if attempt < self.retries:
                await asyncio.sleep(delay)
                delay *= 2
        raise FetchError(url, f"gave up after {self.retries + 1} tries ({last})")

    async def get(self, url: str, *, suffix: str = "") -> bytes:
        """The body of url, from the cache when it was fetched before."""
        return (await self.get_file(url, suffix=suffix)).read_bytes()

    async def get_file(self, url: str, *, suffix: str = "") -> Path:
        """A local file holding url's body (downloaded once, then cached)."""
        path = self.cache_path(url, suffix)
        if path.is_file():
            return path
        body = await self._download(url)
        _write_atomic(path, body)
        return path

    async def get_json(self, url: str) -> Any:
        body = await self.get(url, suffix=".json")
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise FetchError(url, f"not JSON: {exc.msg}") from exc

    async def mirror(self, base_url: str, relpaths: Iterable[str], *, suffix: str = "",
                     dest: Path | None = None, missing_ok: bool = True) -> Path:
        """Copy ``base_url/rel`` for each rel into ``dest/rel{suffix}`` (default: a folder in the
        cache named after base_url); files already there are kept, 404s skipped when missing_ok."""
        base = base_url.rstrip("/")
        root = dest or self.cache_dir / "mirror" / hashlib.sha256(base.encode()).hexdigest()[:16]
        for rel in relpaths:
            target = root / f"{rel}{suffix}"
            if target.is_file():
                continue
            try:
                body = await self._download(f"{base}/{rel}")
            except FetchError as exc:
                if missing_ok and exc.status == 404:
                    continue
                raise
            _write_atomic(target, body)
        return root


def _write_atomic(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(body)
    os.replace(tmp, path)  # a crash leaves no half-written file behind
