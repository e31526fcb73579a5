"""A short TTL cache for repeated identical queries and the overview. In memory by default; Redis
when REDIS_URL is set (answering yet or not: see redis_client). Values must be JSON-serialisable
(Redis stores JSON).

Both are bounded in bytes of JSON (CACHE_MAX_BYTES): the memory cache holds each value as its JSON
bytes, so the bound is what it really holds, and drops expired entries as time passes rather than
only when it is full; no cache keeps a value over a CACHE_ENTRY_SHARE-th of the bound. In Redis
every value carries its TTL, so Redis itself drops it on expiry."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from redis.exceptions import RedisError

from gateway.config import GatewaySettings
from gateway.services import redis_client

DEFAULT_MAX_ENTRIES = 1024
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
CACHE_ENTRY_SHARE = 8  # one value may take at most this fraction of the cache
SWEEP_EVERY_SECONDS = 1.0
REDIS_KEY_PREFIX = "gateway:cache:"

log = logging.getLogger(__name__)


class Cache(Protocol):
    async def get(self, key: str) -> Any | None: ...

    async def set(self, key: str, value: Any, ttl_seconds: float) -> None: ...

    async def close(self) -> None: ...


def _json_within(value: Any, max_bytes: int) -> bytes | None:
    """`value` as JSON when it serialises and fits in `max_bytes`, else None (not cached)."""
    try:
        raw = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        log.warning("not caching a value that is not JSON: %s", exc)
        return None
    return raw if len(raw) <= max_bytes else None


class MemoryCache:
    """LRU with per-entry expiry (monotonic clock), bounded in entries and in JSON bytes."""

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._bytes = 0
        self._next_sweep = 0.0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> Any | None:
        now = self._clock()
        self._sweep(now)
        item = self._entries.get(key)
        if item is None:
            return None
        expires, raw = item
        if expires <= now:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return orjson.loads(raw)

    async def set(self, key: str, value: Any, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            return
        raw = _json_within(value, self._max_bytes // CACHE_ENTRY_SHARE)
        if key in self._entries:
            self._drop(key)
        if raw is None:
            return
        now = self._clock()
        self._entries[key] = (now + ttl_seconds, raw)
        self._bytes += len(raw)
        self._sweep(now)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        _, raw = self._entries.pop(key)
        self._bytes -= len(raw)

    def _sweep(self, now: float) -> None:
        """Drop every expired entry, at most once per SWEEP_EVERY_SECONDS."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_SECONDS
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            self._drop(key)


class RedisCache:
    """A failing Redis is a miss (get) or a no-op (set), logged: a cache outage must not fail the
    requests it only speeds up (the rate limiter fails open the same way)."""

    def __init__(self, client: Any, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:  # redis.asyncio.Redis
        self._client = client
        self._max_entry_bytes = max_bytes // CACHE_ENTRY_SHARE

    async def get(self, key: str) -> Any | None:
        try:
            raw = await self._client.get(REDIS_KEY_PREFIX + key)
        except RedisError as exc:
            log.warning("cache read from Redis failed (%s); computing afresh", type(exc).__name__)
            return None
        return None if raw is None else orjson.loads(raw)

    async def set(self, key: str, value: Any, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            return
        raw = _json_within(value, self._max_entry_bytes)
        if raw is None:
            return
        try:
            await self._client.set(REDIS_KEY_PREFIX + key, raw, px=max(1, int(ttl_seconds * 1000)))
        except RedisError as exc:
            log.warning("cache write to Redis failed (%s); not cached", type(exc).__name__)

    async def close(self) -> None:
        await self._client.aclose()


async def cached(cache: Cache, key: str, ttl_seconds: float, compute: Callable[[], Awaitable[Any]]) -> Any:
    """The cached value for `key`, computing and storing it on a miss."""
    value = await cache.get(key)
    if value is None:
        value = await compute()
        await cache.set(key, value, ttl_seconds)
    return value


async def build_cache(settings: GatewaySettings) -> Cache:
    client = await redis_client.connect(settings, "cache")  # None without REDIS_URL
    if client is not None:
        return RedisCache(client, max_bytes=settings.cache_max_bytes)
    return MemoryCache(max_bytes=settings.cache_max_bytes)
