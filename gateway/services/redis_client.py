"""One way to open Redis (REDIS_URL, REDIS_PASSWORD) for the cache, the alert store, rate limits
and digest claims.

A Redis that does not answer at start (the gateway came up first, or Redis restarts) is used
anyway, with a warning: with REDIS_URL set, every replica must share one state, and falling back
to this process's memory would split it for the process's whole life. Each backend degrades per
call instead (a cache miss, a rate limit that lets the request through, an alert store that
answers 503 so Alertmanager retries) and recovers once Redis answers."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.config import GatewaySettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 1.0


def auth_options(settings: GatewaySettings) -> dict[str, Any]:
    """REDIS_PASSWORD for the client's constructor (a password written in REDIS_URL wins)."""
    password = settings.redis_password
    return {"password": password.get_secret_value()} if password is not None else {}


async def connect(settings: GatewaySettings, purpose: str) -> Any | None:
    """A client for REDIS_URL, None without one."""
    import redis.asyncio as redis_asyncio

    if not settings.redis_url:
        return None
    client = redis_asyncio.from_url(
        settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, **auth_options(settings)
    )
    try:
        await asyncio.wait_for(client.ping(), CONNECT_TIMEOUT_SECONDS * 2)
    except Exception as exc:
        warn_unanswered(purpose, exc)
    return client


def warn_unanswered(purpose: str, exc: BaseException) -> None:
    log.warning("REDIS_URL does not answer for the %s (%s); using it anyway, every call tries again",
                purpose, type(exc).__name__)
