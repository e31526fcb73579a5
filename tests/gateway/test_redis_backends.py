"""REDIS_URL against a real redis-server: replicas share rate limits and the query cache; an
unreachable Redis falls back to memory instead of failing the start."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as redis_asyncio

from gateway.config import GatewaySettings
from gateway.main import create_app
from gateway.services.cache import MemoryCache, RedisCache, build_cache, cached
from tests import redis_server as redis_fixtures
from tests.conftest import free_port
from tests.gateway.conftest import make_settings

redis_server = redis_fixtures.redis_server
redis_url = redis_fixtures.redis_url

ALERTS = "/api/monitoring/alerts"


async def test_replicas_share_one_rate_limit_per_key(
    redis_url: str, client_for: Any, api_key: str, auth_headers: dict[str, str]
) -> None:
    def replica() -> Any:
        return create_app(make_settings(ai_monitoring_api_key=api_key, redis_url=redis_url,
                                        rate_limit="3/minute"))

    async with client_for(replica()) as first, client_for(replica()) as second:
        statuses = [(await client.get(ALERTS, headers=auth_headers)).status_code
                    for client in (first, second, first, second)]
        limited = await second.get(ALERTS, headers=auth_headers)
    assert statuses == [200, 200, 200, 429]
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.json()["error"]["code"] == "rate_limited"


async def test_cache_values_are_shared_and_expire(redis_url: str) -> None:
    settings: GatewaySettings = make_settings(redis_url=redis_url)
    writer, reader = await build_cache(settings), await build_cache(settings)
    try:
        assert isinstance(writer, RedisCache)
        await writer.set("overview", {"services": ["loki"]}, ttl_seconds=30)
        await writer.set("gone", {"x": 1}, ttl_seconds=0.05)
        assert await reader.get("overview") == {"services": ["loki"]}
        await asyncio.sleep(0.2)
        assert await reader.get("gone") is None
    finally:
        await writer.close()
        await reader.close()


async def test_unreachable_redis_falls_back_to_memory() -> None:
    cache = await build_cache(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    assert isinstance(cache, MemoryCache)


async def test_a_redis_failing_after_start_is_a_cache_miss_not_an_error() -> None:
    cache = RedisCache(redis_asyncio.from_url(f"redis://127.0.0.1:{free_port()}/0"))
    computed: list[int] = []

    async def compute() -> dict[str, int]:
        computed.append(1)
        return {"value": 42}

    try:
        assert await cache.get("overview") is None
        await cache.set("overview", {"value": 1}, ttl_seconds=30)
        assert await cached(cache, "overview", 30, compute) == {"value": 42}
    finally:
        await cache.close()
    assert computed == [1]
