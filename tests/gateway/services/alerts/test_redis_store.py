"""RedisAlertStore against a real redis-server: ordering, bounds, updates and concurrent writers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis_asyncio

from gateway.errors import as_api_error
from gateway.services.alerts import AlertContext, WebhookAlert, WebhookPayload
from gateway.services.alerts.redis_store import AlertStoreUnavailable, RedisAlertStore
from tests import redis_server as redis_fixtures
from tests.conftest import free_port

redis_server = redis_fixtures.redis_server
redis_url = redis_fixtures.redis_url


def notification(fingerprint: str, status: str = "firing") -> tuple[WebhookAlert, WebhookPayload]:
    alert = {
        "status": status, "labels": {"alertname": "X"}, "annotations": {},
        "startsAt": "2026-11-30T10:00:00Z",
        "endsAt": "2026-11-30T10:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "", "fingerprint": fingerprint,
    }
    body: dict[str, Any] = {
        "version": "4", "groupKey": "g", "status": status, "receiver": "gateway", "alerts": [alert],
    }
    parsed = WebhookPayload.model_validate(body)
    return parsed.alerts[0], parsed


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisAlertStore]:
    store = RedisAlertStore(redis_asyncio.from_url(redis_url), max_entries=3)
    yield store
    await store.close()


async def test_newest_first_bounded_and_filtered_by_status(store: RedisAlertStore) -> None:
    for index in range(5):
        await store.upsert(*notification(f"fp{index}"))
    await store.upsert(*notification("fp3", "resolved"))
    assert [e.fingerprint for e in await store.list()] == ["fp3", "fp4", "fp2"]
    assert [e.fingerprint for e in await store.list("firing")] == ["fp4", "fp2"]
    assert [e.fingerprint for e in await store.list("resolved")] == ["fp3"]
    assert [e.fingerprint for e in await store.list(limit=1)] == ["fp3"]


async def test_update_changes_fields_without_reordering_and_ignores_unknown(store: RedisAlertStore) -> None:
    await store.upsert(*notification("a"))
    await store.upsert(*notification("b"))
    await store.update("a", lambda entry: entry.with_context(AlertContext("{x=\"y\"}", lines_read=7)))
    await store.update("gone", lambda entry: entry.with_context(AlertContext(None)))
    listed = await store.list()
    assert [e.fingerprint for e in listed] == ["b", "a"]
    assert listed[1].context == AlertContext("{x=\"y\"}", lines_read=7)
    assert len(listed) == 2


async def test_concurrent_replicas_never_lose_a_notification(redis_url: str) -> None:
    replicas = [RedisAlertStore(redis_asyncio.from_url(redis_url), max_entries=10) for _ in range(4)]
    try:
        writes = [replica.upsert(*notification("same")) for replica in replicas for _ in range(10)]
        await asyncio.gather(*writes)
        [entry] = await replicas[0].list()
    finally:
        for replica in replicas:
            await replica.close()
    assert entry.notifications == 40


async def test_an_unreachable_redis_is_a_503_api_error() -> None:
    store = RedisAlertStore(redis_asyncio.from_url(f"redis://127.0.0.1:{free_port()}/0"), max_entries=3)
    try:
        for call in (store.upsert(*notification("a")), store.update("a", lambda entry: entry), store.list()):
            with pytest.raises(AlertStoreUnavailable) as raised:
                await call
            assert (as_api_error(raised.value).status, raised.value.code) == (503, "alert_store_unavailable")
            assert "REDIS_URL" in raised.value.hint
    finally:
        await store.close()


async def test_a_short_list_reads_a_few_entries_not_the_whole_store(redis_url: str) -> None:
    store = RedisAlertStore(redis_asyncio.from_url(redis_url), max_entries=50)
    try:
        await store.upsert(*notification("old", "resolved"))
        for index in range(20):
            await store.upsert(*notification(f"fp{index}"))
        read: list[int] = []
        mget = store._client.mget

        async def counting_mget(keys: list[str]) -> Any:
            read.append(len(keys))
            return await mget(keys)

        store._client.mget = counting_mget  # type: ignore[method-assign]
        assert [e.fingerprint for e in await store.list(limit=2)] == ["fp19", "fp18"]
        assert read == [2]
        read.clear()
        assert [e.fingerprint for e in await store.list("resolved", limit=5)] == ["old"]  # the oldest
        assert sum(read) == 21 and max(read) == 5
    finally:
        await store.close()
