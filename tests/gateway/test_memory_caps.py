"""Issue 21 item 3: the answer cache and the alert store are bounded in bytes (memory and Redis),
expired cache entries go as time passes, and one alert is bounded (cut with a marker, counted).

The RSS tests run the gateway as its own process (uvicorn, the project's settings from the
environment) so that its resident memory is its own, and feed it what the adversarial run fed
it: 300 webhooks of about 4 MB from an alerts:write key, and 110 distinct 4,999-line query_range
answers from the real Loki."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis.asyncio as redis_asyncio

from gateway.metrics import REGISTRY
from gateway.security import generate_key
from gateway.services.alert_bounds import TRUNCATED_KEYS_ANNOTATION, bounded_payload, entry_bytes
from gateway.services.alerts import AlertContext, MemoryAlertStore, StoredAlert, WebhookPayload
from gateway.services.alerts.redis_store import RedisAlertStore
from gateway.services.cache import CACHE_ENTRY_SHARE, MemoryCache, RedisCache
from tests import redis_server as redis_fixtures
from tests.conftest import free_port, stop_process
from tests.real_loki import RealLoki, run_id

redis_server = redis_fixtures.redis_server
redis_url = redis_fixtures.redis_url

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
WEBHOOKS = 300
WEBHOOK_BYTES = 4 * MIB - 64 * 1024  # just under the default ALERTS_WEBHOOK_MAX_BYTES
DISTINCT_QUERIES = 110
QUERY_LINES = 4_999
# What the defaults (64 MiB of alerts, 64 MiB of cached answers) may cost the process on top of
# what it held before the flood, allocator slack for the parsing included. Before the caps the
# same floods took it from 93 to 1,276 MB and from 93 to 486 MB (the issue saw 1,386 and 930 MB).
MAX_RSS_GROWTH_MB = 250


def webhook(fingerprint_base: str, alerts: int, annotation_bytes: int) -> dict[str, Any]:
    return {
        "version": "4", "groupKey": "{}:{alertname=\"Flood\"}", "status": "firing", "receiver": "gateway",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Flood", "n": str(n)},
                "annotations": {"description": "x" * annotation_bytes},
                "startsAt": "2026-12-01T10:00:00Z",
                "fingerprint": f"{fingerprint_base}-{n}",
            }
            for n in range(alerts)
        ],
    }


# --- one alert ------------------------------------------------------------------------------


def test_an_oversized_alert_is_cut_with_a_marker_and_counted() -> None:
    body = webhook("fp", 1, 4 * MIB)
    body["alerts"][0]["annotations"].update({f"extra{n}": "y" * 1000 for n in range(500)})
    payload = WebhookPayload.model_validate(body)
    bounded, changed = bounded_payload(payload, 64 * 1024)
    alert = bounded.alerts[0]
    description = alert.annotations["description"]
    assert description.startswith("x" * 1000)
    assert description.endswith(f"…[truncated {4 * MIB - 8 * 1024} bytes]")
    dropped = int(alert.annotations[TRUNCATED_KEYS_ANNOTATION])
    assert dropped > 400  # the extra annotations beyond the bound are dropped and counted
    assert changed == 1 + dropped
    assert alert.labels == {"alertname": "Flood", "n": "0"}  # small values are untouched
    assert len(json.dumps(alert.model_dump(mode="json"))) < 80 * 1024


def test_a_small_alert_is_left_as_it_is() -> None:
    payload = WebhookPayload.model_validate(webhook("fp", 3, 100))
    assert bounded_payload(payload, 64 * 1024) == (payload, 0)


# --- the alert stores -------------------------------------------------------------------------


def long_summary(entry: StoredAlert) -> StoredAlert:
    return entry.with_context(AlertContext(None, "s" * 50_000))


def flood_payloads(count: int, alerts: int, annotation_bytes: int) -> list[WebhookPayload]:
    return [WebhookPayload.model_validate(webhook(f"w{i}", alerts, annotation_bytes)) for i in range(count)]


async def test_the_memory_alert_store_is_bounded_in_bytes() -> None:
    store = MemoryAlertStore(1000, max_bytes=MIB)
    for payload in flood_payloads(40, 5, 20_000):
        for alert in payload.alerts:
            await store.upsert(alert, payload)
    listed = await store.list(limit=1000)
    held = sum(entry_bytes(entry.dump()) for entry in listed)
    assert held == store.size_bytes <= MIB
    assert 40 <= len(listed) < 200  # bounded by bytes, long before its 1,000 entries
    assert listed[0].fingerprint == "w39-4"  # the newest stays
    await store.update("w39-4", long_summary)
    assert store.size_bytes == sum(entry_bytes(e.dump()) for e in await store.list(limit=1000))


async def test_the_redis_alert_store_is_bounded_in_bytes(redis_url: str) -> None:
    store = RedisAlertStore(redis_asyncio.from_url(redis_url), 1000, max_bytes=MIB)
    try:
        for payload in flood_payloads(40, 5, 20_000):
            for alert in payload.alerts:
                await store.upsert(alert, payload)
        await store.update("w39-4", long_summary)
        listed = await store.list(limit=1000)
        assert listed[0].fingerprint == "w39-4"
        assert 40 <= len(listed) < 200
        held = sum(len(json.dumps(entry.dump()).encode()) for entry in listed)
        assert held == await store.size_bytes() <= MIB + 60_000  # the update may overshoot once
        raw = redis_asyncio.from_url(redis_url)
        assert await raw.dbsize() == len(listed) + 2  # entries, the order, the byte counter
        await raw.aclose()
    finally:
        await store.close()


# --- the answer cache -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(lines: int, tag: str) -> dict[str, Any]:
    return {"streams": [{"labels": {"q": tag}, "entries": [["2026-12-01T10:00:00Z", "l" * 200]] * lines}]}


async def test_the_memory_cache_is_bounded_in_bytes_and_drops_expired_entries() -> None:
    clock = Clock()
    cache = MemoryCache(clock=clock, max_bytes=MIB)
    for n in range(50):
        await cache.set(f"k{n}", answer(200, str(n)), ttl_seconds=10)
    assert cache.size_bytes <= MIB
    assert await cache.get("k49") == answer(200, "49")
    assert await cache.get("k0") is None  # the least recently used went first
    kept = len(cache)
    assert 10 < kept < 50

    clock.now += 11  # every entry expired: the next call drops them all, not only the one it reads
    assert await cache.get("k49") is None
    assert (len(cache), cache.size_bytes) == (0, 0)

    too_big = answer(MIB // CACHE_ENTRY_SHARE // 200, "big")
    await cache.set("big", too_big, ttl_seconds=10)
    assert await cache.get("big") is None and cache.size_bytes == 0

    value = answer(1, "copy")
    await cache.set("copy", value, ttl_seconds=10)
    value["streams"].clear()  # a caller changing its answer does not change the cached one
    assert await cache.get("copy") == answer(1, "copy")


async def test_the_redis_cache_keeps_no_value_over_its_share(redis_url: str) -> None:
    cache = RedisCache(redis_asyncio.from_url(redis_url), max_bytes=MIB)
    try:
        await cache.set("small", answer(10, "s"), ttl_seconds=10)
        await cache.set("big", answer(MIB // CACHE_ENTRY_SHARE // 200, "b"), ttl_seconds=10)
        assert await cache.get("small") == answer(10, "s")
        assert await cache.get("big") is None
    finally:
        await cache.close()


# --- the whole gateway, its RSS measured ---------------------------------------------------------


@dataclass
class GatewayProcess:
    url: str
    key: str
    process: subprocess.Popen[bytes]

    def rss_mb(self) -> float:
        return float(psutil.Process(self.process.pid).memory_info().rss) / MIB


def start_gateway(env_overrides: dict[str, str], log_path: Path) -> GatewayProcess:
    port, key = free_port(), generate_key()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LOKI_", "REDIS_", "GATEWAY_"))},
        "AI_MONITORING_API_KEY": key, "RATE_LIMIT": "100000/minute", "LOG_LEVEL": "WARNING",
        **env_overrides,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "gateway.main:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log_path.open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return GatewayProcess(url, key, process)
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"the gateway did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)


@pytest.fixture
def gateway_for_alerts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GatewayProcess]:
    env = {"LOKI_URL": f"http://127.0.0.1:{free_port()}"}  # no Loki: context reads just fail
    if getattr(request, "param", "memory") == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    gateway = start_gateway(env, tmp_path / "gateway.log")
    yield gateway
    stop_process(gateway.process)


@pytest.mark.parametrize("gateway_for_alerts", ["memory", "redis"], indirect=True)
async def test_hostile_webhooks_leave_rss_bounded(gateway_for_alerts: GatewayProcess) -> None:
    gateway = gateway_for_alerts
    headers = {"x-api-key": gateway.key, "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        before = gateway.rss_mb()
        for n in range(WEBHOOKS):
            body = json.dumps(webhook(f"h{n}", 1, WEBHOOK_BYTES)).encode()
            assert len(body) < 4 * MIB
            response = await client.post("/api/monitoring/alerts/webhook", content=body, headers=headers)
            assert response.status_code == 200, response.text
        await asyncio.sleep(1)  # the background processing of the last notifications
        after = gateway.rss_mb()
        listed = await client.get("/api/monitoring/alerts?limit=1000", headers={"x-api-key": gateway.key})
    assert listed.status_code == 200
    alerts_json_mb = len(listed.content) / MIB
    cut = [a for a in listed.json()["alerts"] if "[truncated" in a["annotations"].get("description", "")]
    print(f"\n{WEBHOOKS} webhooks of ~4 MB: RSS {before:.0f} -> {after:.0f} MB; "
          f"GET alerts?limit=1000 answered {alerts_json_mb:.1f} MB ({listed.json()['count']} alerts)")
    assert after - before < MAX_RSS_GROWTH_MB
    assert alerts_json_mb < 70
    assert cut, "the 4 MB annotations are stored cut, with the marker"


@pytest.fixture
def gateway_on_real_loki(real_loki: RealLoki, tmp_path: Path) -> Iterator[GatewayProcess]:
    env = {"LOKI_URL": real_loki.url, "LOKI_TIMEOUT_SECONDS": "60"}
    gateway = start_gateway(env, tmp_path / "gateway.log")
    yield gateway
    stop_process(gateway.process)


async def test_distinct_large_query_answers_leave_rss_bounded(
    real_loki: RealLoki, gateway_on_real_loki: GatewayProcess
) -> None:
    gateway = gateway_on_real_loki
    bucket = run_id("mem")
    now = time.time_ns()
    labels = {"source": "gcs", "service_name": "trades", "bucket": bucket, "prefix": "trades",
              "level": "info"}
    filler = "order filled " + "x" * 430
    real_loki.push([(labels, [(now - i * 1_000_000, f"{i} {filler}") for i in range(QUERY_LINES)])])
    headers = {"x-api-key": gateway.key}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=120) as client:
        before = gateway.rss_mb()
        answer_bytes = 0
        for n in range(DISTINCT_QUERIES):
            query = f'{{bucket="{bucket}"}} != "absent-{n}"'
            response = await client.get(
                "/api/monitoring/logs/query_range",
                params={"query": query, "since": "1h", "limit": QUERY_LINES, "max_bytes": 4 << 20},
                headers=headers,
            )
            assert response.status_code == 200, response.text
            assert sum(len(s["entries"]) for s in response.json()["streams"]) == QUERY_LINES
            answer_bytes += len(response.content)
        after = gateway.rss_mb()
    print(f"\n{DISTINCT_QUERIES} distinct {QUERY_LINES}-line answers "
          f"({answer_bytes / DISTINCT_QUERIES / MIB:.2f} MB each): RSS {before:.0f} -> {after:.0f} MB")
    assert after - before < MAX_RSS_GROWTH_MB


async def test_the_webhook_stores_an_oversized_alert_cut_and_counts_it(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    before = REGISTRY.get_sample_value("gateway_alert_fields_truncated_total") or 0.0
    body = webhook("cut", 1, MIB)
    response = await client.post("/api/monitoring/alerts/webhook", json=body, headers=auth_headers)
    assert response.status_code == 200, response.text
    stored = (await client.get("/api/monitoring/alerts", headers=auth_headers)).json()["alerts"][0]
    description = stored["annotations"]["description"]
    assert description.endswith(f"…[truncated {MIB - 8 * 1024} bytes]")
    assert REGISTRY.get_sample_value("gateway_alert_fields_truncated_total") == before + 1
