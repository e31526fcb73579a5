"""One way to open Redis (REDIS_URL) for the cache, the alert store and rate limits: a client that
answered a ping, or None (and a warning) so the caller falls back to memory."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 1.0


async def connect(url: str, purpose: str) -> Any | None:
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        await asyncio.wait_for(client.ping(), CONNECT_TIMEOUT_SECONDS * 2)
    except Exception as exc:  # any connection problem means: fall back to memory
        log.warning("REDIS_URL unreachable for the %s (%s); using memory", purpose, type(exc).__name__)
        await client.aclose()
        return None
    return client
