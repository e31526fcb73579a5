"""A short TTL cache for repeated identical queries and the overview. In memory by default; Redis
when REDIS_URL is set (answering yet or not: see redis_client). Values must be JSON-serialisable
(Redis stores JSON)."""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis.exceptions import RedisError

from gateway.config import GatewaySettings
from gateway.services import redis_client

DEFAULT_MAX_ENTRIES = 1024
REDIS_KEY_PREFIX = "gateway:cache:"

log = logging.getLogger(__name__)


class Cache(Protocol):
    async def get(self, key: str) -> Any | None: ...

    async def set(self, key: str, value: Any, ttl_seconds: float) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    """Bounded LRU with per-entry expiry, using the monotonic clock."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._max_entries = max_entries
        self._clock = clock

    async def get(self, key: str) -> Any | None:
        item = self._entries.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: Any, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            return
        self._entries[key] = (self._clock() + ttl_seconds, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    """A failing Redis is a miss (get) or a no-op (set), logged: a cache outage must not fail the
    requests it only speeds up (the rate limiter fails open the same way)."""

    def __init__(self, client: Any) -> None:  # redis.asyncio.Redis
        self._client = client

    async def get(self, key: str) -> Any | None:
        try:
            raw = await self._client.get(REDIS_KEY_PREFIX + key)
        except RedisError as exc:
            log.warning("cache read from Redis failed (%s); computing afresh", type(exc).__name__)
            return None
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            return
        try:
            await self._client.set(
                REDIS_KEY_PREFIX + key, json.dumps(value), px=max(1, int(ttl_seconds * 1000))
            )
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
    return RedisCache(client) if client is not None else MemoryCache()
