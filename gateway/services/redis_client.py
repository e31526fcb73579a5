"""One way to open Redis (REDIS_URL, REDIS_PASSWORD) for the cache, the alert store and rate
limits: a client that answered a ping, or None (and a warning) so the caller falls back to memory."""

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
    import redis.asyncio as redis_asyncio

    if not settings.redis_url:
        return None
    client = redis_asyncio.from_url(
        settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, **auth_options(settings)
    )
    try:
        await asyncio.wait_for(client.ping(), CONNECT_TIMEOUT_SECONDS * 2)
    except Exception as exc:  # any connection problem means: fall back to memory
        log.warning("REDIS_URL unreachable for the %s (%s); using memory", purpose, type(exc).__name__)
        await client.aclose()
        return None
    return client
