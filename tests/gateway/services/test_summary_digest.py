"""Scheduled digests: one summary per source pushed to Loki as {source="gateway", kind="summary"}
(JSON push format, respx), sources without lines skipped, and the scheduler wired to the app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import redis.asyncio as redis_asyncio
import respx

from gateway.main import create_app
from gateway.services import digest
from gateway.services.digest import DigestScheduler
from gateway.services.events import LokiEventWriter
from gateway.services.redact import redact
from gateway.services.summarize import Summarizer
from tests import redis_server as redis_fixtures
from tests.gateway.conftest import make_settings
from tests.gateway.summary_logs import NS, SyntheticLog

redis_server = redis_fixtures.redis_server
redis_url = redis_fixtures.redis_url

LOKI = "http://loki.test"
NOW_NS = 1_763_798_400 * NS


class OnlyPods(SyntheticLog):
    """Lines for {source="pod"} only; other sources have none in any window."""

    async def iter_lines(self, query: str, **kwargs: Any):  # type: ignore[no-untyped-def,override]
        if 'source="pod"' in query:
            async for entry in super().iter_lines(query, **kwargs):
                yield entry


async def test_digest_pushes_one_summary_per_source_with_lines() -> None:
    log = OnlyPods(lines=500, incident_at_ns=NOW_NS - 60 * NS, incident_count=50)
    with respx.mock() as router:
        push = router.post(f"{LOKI}/loki/api/v1/push").mock(return_value=httpx.Response(204))
        async with httpx.AsyncClient() as http:
            scheduler = DigestScheduler(
                Summarizer(log, redact, None).summarize,
                LokiEventWriter(http, LOKI, tenant="team-a"),
                interval_minutes=15,
                clock_ns=lambda: NOW_NS,
            )
            written = await scheduler.run_once()
    assert written == 1
    assert [c["query"] for c in log.calls] == ['{source="pod"}', '{source="pod"}']
    assert log.calls[1]["end_ns"] - log.calls[1]["start_ns"] == 15 * 60 * NS
    request = push.calls.last.request
    assert request.headers["X-Scope-OrgID"] == "team-a"
    stream = json.loads(request.content)["streams"][0]
    assert stream["stream"] == {
        "source": "gateway",
        "service_name": "gateway",
        "kind": "summary",
        "level": "info",
    }
    event = json.loads(stream["values"][0][1])
    assert event["digest_source"] == "pod" and event["lines_read"] == 550
    assert event["model"] is None and "x50" in event["summary"]
    assert event["top_templates"][0]["count"] == 50


async def test_a_failing_loki_push_is_reported_not_raised() -> None:
    log = OnlyPods(lines=100, incident_at_ns=0)
    with respx.mock() as router:
        router.post(f"{LOKI}/loki/api/v1/push").mock(side_effect=httpx.ConnectError("refused"))
        async with httpx.AsyncClient() as http:
            scheduler = DigestScheduler(
                Summarizer(log, redact, None).summarize,
                LokiEventWriter(http, LOKI),
                interval_minutes=5,
                clock_ns=lambda: NOW_NS,
            )
            assert await scheduler.run_once() == 0


async def test_the_app_runs_the_scheduler_when_configured(api_key: str, client_for: Any) -> None:
    app = create_app(make_settings(ai_monitoring_api_key=api_key, summary_digest_interval_minutes=5))
    async with client_for(app) as client:
        response = await client.get("/health")
        tasks = {task.get_name() for task in asyncio.all_tasks()}
    assert response.status_code == 200
    assert "summary-digest" in tasks
    assert "summary-digest" not in {task.get_name() for task in asyncio.all_tasks()}


async def test_the_schedule_survives_a_failing_round(monkeypatch: pytest.MonkeyPatch) -> None:
    rounds: list[str] = []

    class BrokenWriter:
        async def write(self, kind: str, level: str, fields: dict[str, Any]) -> bool:
            rounds.append(fields["digest_source"])
            raise RuntimeError("not an httpx error: escapes run_once")

    sleeps = 0

    async def no_wait(seconds: float) -> None:
        nonlocal sleeps
        sleeps += 1
        if sleeps > 2:
            raise asyncio.CancelledError

    monkeypatch.setattr(digest.asyncio, "sleep", no_wait)
    scheduler = DigestScheduler(
        Summarizer(OnlyPods(lines=10, incident_at_ns=0), redact, None).summarize,
        BrokenWriter(),
        interval_minutes=1,
        sources=("pod",),
        clock_ns=lambda: NOW_NS,
    )
    with pytest.raises(asyncio.CancelledError):
        await scheduler._loop()
    assert rounds == ["pod", "pod"]


async def test_windows_are_aligned_so_replicas_summarize_the_same_one() -> None:
    log = OnlyPods(lines=100, incident_at_ns=0)
    scheduler = DigestScheduler(
        Summarizer(log, redact, None).summarize, RecordingWriter(), interval_minutes=15,
        sources=("pod",), clock_ns=lambda: NOW_NS + 7 * 60 * NS,
    )
    await scheduler.run_once()
    assert log.calls[-1]["end_ns"] == NOW_NS and log.calls[-1]["start_ns"] == NOW_NS - 15 * 60 * NS


async def test_with_redis_only_one_replica_writes_each_window(redis_url: str) -> None:
    writers = [RecordingWriter(), RecordingWriter(), RecordingWriter()]
    clients = [redis_asyncio.from_url(redis_url) for _ in writers]
    now = [NOW_NS + 60 * NS]
    try:
        replicas = [
            DigestScheduler(
                Summarizer(OnlyPods(lines=100, incident_at_ns=0), redact, None).summarize, writer,
                interval_minutes=15, sources=("pod",), clock_ns=lambda: now[0],
                claim=digest.redis_claim(client, 15 * 60 * NS),
            )
            for writer, client in zip(writers, clients, strict=True)
        ]
        assert sorted(await asyncio.gather(*(r.run_once() for r in replicas))) == [0, 0, 1]
        now[0] += 15 * 60 * NS  # the next window is claimed afresh
        assert sorted(await asyncio.gather(*(r.run_once() for r in replicas))) == [0, 0, 1]
    finally:
        for client in clients:
            await client.aclose()
    assert sum(len(writer.events) for writer in writers) == 2


class RecordingWriter:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def write(self, kind: str, level: str, fields: dict[str, Any]) -> bool:
        self.events.append(fields)
        return True
