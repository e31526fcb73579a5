"""REDIS_URL against a real redis-server: replicas share rate limits and the query cache; a Redis
that does not answer yet is used anyway (requests degrade, nothing fails, and Redis is used once
it answers: never this process's own memory, which would split the replicas' state);
REDIS_PASSWORD authenticates every client without ever being written in a log."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from limits.aio.storage import MemoryStorage

from gateway.config import GatewaySettings
from gateway.main import create_app
from gateway.security import build_rate_limiter
from gateway.services.alerts.redis_store import RedisAlertStore
from gateway.services.cache import RedisCache, build_cache, cached
from gateway.wiring import build_store
from tests import redis_server as redis_fixtures
from tests.conftest import free_port
from tests.gateway.conftest import make_settings

redis_server = redis_fixtures.redis_server
redis_url = redis_fixtures.redis_url
protected_redis = redis_fixtures.protected_redis

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


async def test_a_redis_that_answers_only_after_the_start_is_used_from_then_on(
    client_for: Any, api_key: str, auth_headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway came up before its Redis (kubectl apply starts both at once)."""
    port = free_port()
    settings = make_settings(ai_monitoring_api_key=api_key, redis_url=f"redis://127.0.0.1:{port}/0",
                             rate_limit="2/minute")
    first, second = await build_cache(settings), await build_cache(settings)
    try:
        assert isinstance(first, RedisCache) and "does not answer for the cache" in caplog.text
        await first.set("overview", {"up": 1}, ttl_seconds=30)  # no Redis yet: nothing stored, no error
        assert await second.get("overview") is None
        async with client_for(create_app(settings)) as one, client_for(create_app(settings)) as other:
            assert (await one.get(ALERTS, headers=auth_headers)).status_code == 503  # Alertmanager retries
            with redis_fixtures.running_redis(port=port):
                await first.set("overview", {"up": 1}, ttl_seconds=30)
                assert await second.get("overview") == {"up": 1}  # shared, not per process
                statuses = [(await client.get(ALERTS, headers=auth_headers)).status_code
                            for client in (one, other, one)]
        assert statuses == [200, 200, 429]  # one limit across both replicas
    finally:
        await first.close()
        await second.close()


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


async def test_redis_password_authenticates_rate_limits_cache_and_alert_store(
    protected_redis: tuple[str, str], client_for: Any, api_key: str, auth_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, password = protected_redis
    caplog.set_level(logging.DEBUG)
    settings = make_settings(ai_monitoring_api_key=api_key, redis_url=url, redis_password=password,
                             rate_limit="3/minute")

    async with client_for(create_app(settings)) as first, client_for(create_app(settings)) as second:
        statuses = [(await client.get(ALERTS, headers=auth_headers)).status_code
                    for client in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]  # one limit across both replicas: it lives in Redis
    cache, store = await build_cache(settings), await build_store(settings)
    try:
        assert isinstance(cache, RedisCache)
        assert isinstance(store, RedisAlertStore)
    finally:
        await cache.close()
    assert password not in caplog.text


async def test_a_missing_or_wrong_redis_password_is_a_loud_degradation_and_never_logged(
    protected_redis: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, password = protected_redis
    wrong = "wrong-" + password
    caplog.set_level(logging.DEBUG)
    for settings in (make_settings(redis_url=url), make_settings(redis_url=url, redis_password=wrong)):
        cache = await build_cache(settings)
        try:
            assert isinstance(cache, RedisCache)  # not this process's memory: that would split state
            await cache.set("k", {"v": 1}, ttl_seconds=30)
            assert await cache.get("k") is None  # refused by Redis: a miss, not an error
        finally:
            await cache.close()
        limiter = await build_rate_limiter(settings)
        assert not isinstance(limiter.storage, MemoryStorage)
        await limiter.check("key")  # lets the request through, logged
    assert "AuthenticationError" in caplog.text  # the warnings say why, without the secret
    assert password not in caplog.text and wrong not in caplog.text
