"""Per-key rate limits, in memory or in Redis."""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from gateway.config import GatewaySettings
from gateway.services import redis_client
from gateway.services.errors import RateLimited

log = logging.getLogger(__name__)


class KeyRateLimiter:
    """Per-key sliding-window limit (`limits` notation, e.g. "120/minute"). The sliding window
    counter keeps two counters per key, where a moving window keeps one entry per request (memory
    and time growing with the limit, and the in-memory storage's expiry runs a thread per key)."""

    def __init__(self, limit: str, storage: Storage | None = None) -> None:
        self.item: RateLimitItem = parse(limit)
        self.storage = storage or MemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(self.storage)

    async def check(self, key_id: str) -> None:
        try:
            if await self._limiter.hit(self.item, key_id):
                return
            stats = await self._limiter.get_window_stats(self.item, key_id)
        except Exception as exc:  # a failing Redis must not take the API down: fail open, loudly
            log.warning("rate limit storage failed (%s); request allowed", type(exc).__name__)
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            "rate_limited",
            f"rate limit of {self.item} per key exceeded",
            f"retry after {retry_after} s, or ask for a higher limit",
            retry_after_seconds=retry_after,
        )


async def build_rate_limiter(settings: GatewaySettings) -> KeyRateLimiter:
    """Redis-backed when REDIS_URL is set, answering yet or not (see redis_client); in memory
    otherwise."""
    if not settings.redis_url:
        return KeyRateLimiter(settings.rate_limit)
    storage = RedisStorage(
        "async+" + settings.redis_url, implementation="redispy", **redis_client.auth_options(settings)
    )
    try:
        answered = await storage.check()
    except Exception as exc:
        redis_client.warn_unanswered("rate limits", exc)
    else:
        if not answered:
            redis_client.warn_unanswered("rate limits", ConnectionError("no answer to a ping"))
    return KeyRateLimiter(settings.rate_limit, storage)
