"""Time out (issue 19): on the real Loki, every answer of the gateway's own routes gives its times
in RFC 3339 UTC with a `Z` (no Unix seconds, no `+00:00`) and echoes the window it resolved its
time words to. (The Loki-compatible /loki/api/v1 routes keep Loki's own formats for Grafana.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from gateway.services.aggregate import pattern_totals
from gateway.services.times import echo_window, parse_time_ns, samples_in_rfc3339, seconds_z
from tests.gateway.incident import Incident

NS = 1_000_000_000
RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
TIME_KEYS = re.compile(r"(since|until|checked_at|first_seen|last_seen|.*_at)$")




def looks_like_a_time(value: Any) -> bool:
    if isinstance(value, str):
        return bool(RFC3339_Z.fullmatch(value)) or value.isdigit()
    return isinstance(value, int | float) and not isinstance(value, bool)


def times_in(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every value of `value` that is a time: named like one, or the first element of a sample or
    an entry ([t, v] / [t, line] / [t, line, metadata])."""
    if isinstance(value, dict):
        for key, item in value.items():
            if TIME_KEYS.match(key) and not isinstance(item, dict | list):
                yield f"{path}.{key}", item
            else:
                yield from times_in(item, f"{path}.{key}")
    elif isinstance(value, list):
        first = value[0] if 2 <= len(value) <= 3 else None
        if looks_like_a_time(first):
            yield f"{path}[0]", first
        for index, item in enumerate(value):
            yield from times_in(item, f"{path}[{index}]")


def assert_times_in_rfc3339(body: Any, where: str) -> None:
    found = list(times_in(body))
    for path, value in found:
        assert isinstance(value, str) and RFC3339_Z.fullmatch(value), f"{where}: {path} = {value!r}"
    assert found, f"{where}: no time in the answer"


async def test_every_route_answers_in_rfc3339_z_and_echoes_its_window(
    agent: httpx.AsyncClient, incident: Incident
) -> None:
    selector = f'{{bucket="{incident.bucket}"}}'
    window = {"since": "now-2h", "until": "now"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/logs/gcs", {"bucket": incident.bucket, "limit": 5, **window}),
        ("GET", "/logs/gcs", {"bucket": incident.bucket, "aggregate": "template", **window}),
        ("GET", "/logs/gcs", {"bucket": incident.bucket, "limit": 5, "format": "compact", **window}),
        ("GET", "/api/monitoring/logs/production", {"hours": 2, "limit": 5}),
        ("GET", "/api/monitoring/logs/query_range", {"query": selector, "limit": 5, **window}),
        ("GET", "/api/monitoring/logs/query_range",
         {"query": f"sum by (level) (count_over_time({selector}[10m]))", "step": "10m", **window}),
        ("GET", "/api/monitoring/logs/query", {"query": f"sum(count_over_time({selector}[1h]))"}),
        ("GET", "/api/monitoring/logs/labels", {"query": selector, **window}),
        ("GET", "/api/monitoring/logs/label/level/values", {"query": selector, **window}),
        ("GET", "/api/monitoring/logs/stats", {"query": selector, **window}),
        ("GET", "/api/monitoring/logs/patterns", {"query": selector, **window}),
        ("GET", "/api/monitoring/logs/volume", {"query": selector, "by": "level", "step": "10m", **window}),
        ("GET", "/api/monitoring/logs/detected_fields", {"query": selector, **window}),
        ("GET", "/api/monitoring/overview", {}),
        ("POST", "/logs/summary", {"source": "gcs", "bucket": incident.bucket, "since": "now-2h"}),
    ]
    for method, path, params in calls:
        where = f"{method} {path} {params}"
        if method == "GET":
            answer = await agent.get(path, params=params)
        else:
            answer = await agent.post(path, json=params)
        assert answer.status_code == 200, f"{where}: {answer.text[:300]}"
        body = answer.json()
        assert_times_in_rfc3339(body, where)
        echoed = body["window"]
        since, until = parse_time_ns(echoed["since"], 0), parse_time_ns(echoed["until"], 0)
        if "since" in params or "hours" in params:  # the two hours asked for (the summary rounds to a minute)
            assert abs((until - since) - 2 * 3600 * NS) <= 60 * NS, where
        assert abs(until - incident.now_ns) < 600 * NS, where  # "now" resolved near the planted time


def test_explicit_windows_are_echoed_exactly() -> None:
    since = parse_time_ns("2026-12-05T09:56:21.217+01:00", 0)
    until = parse_time_ns("1780000000", 0)
    assert echo_window(since, until) == {
        "since": "2026-12-05T08:56:21.217000000Z", "until": "2026-05-28T20:26:40.000000000Z",
    }


def test_sample_times_of_every_metric_result_type() -> None:
    matrix = [{"metric": {"a": "b"}, "values": [[1780000000, "1"], [1780000000.5, "2"]]}]
    vector = [{"metric": {}, "value": [1780000000.25, "3"]}]
    assert samples_in_rfc3339(matrix) == [
        {"metric": {"a": "b"}, "values": [["2026-05-28T20:26:40Z", "1"], ["2026-05-28T20:26:40.500Z", "2"]]}
    ]
    assert samples_in_rfc3339(vector) == [{"metric": {}, "value": ["2026-05-28T20:26:40.250Z", "3"]}]
    assert samples_in_rfc3339([1780000000, "4"]) == ["2026-05-28T20:26:40Z", "4"]  # scalar
    assert seconds_z(1780000000.9999) == "2026-05-28T20:26:41Z"  # rounds into the next second
    malformed = [{"metric": {}, "value": [float("nan"), "1"]}, {"metric": {}, "values": [[1e300, "2"], "x"]}]
    assert samples_in_rfc3339(malformed) == malformed  # passed on as they came, not a 500
    broken = [{"pattern": "a <_>", "samples": [[1780000000, 3], [float("nan"), 2], [1e300, 1], ["x", 1]]}]
    (row,) = pattern_totals(broken, matched=5)["patterns"]  # counted only where the time is one
    assert (row["samples"], row["total"], row["first_seen"]) == (
        [["2026-05-28T20:26:40Z", 3]], 3, "2026-05-28T20:26:40.000000000Z"
    )
    assert datetime(2026, 5, 28, 20, 26, 40, tzinfo=UTC) + timedelta(seconds=1) == datetime.fromisoformat(
        seconds_z(1780000001)
    )


async def test_a_cursor_page_echoes_the_window_it_read(agent: httpx.AsyncClient, incident: Incident) -> None:
    """The cursor, not the time words of the request, fixes where a later page reads (here the
    words even say the last 5 minutes, while the cursor walks back through the last hour)."""
    params = {"bucket": incident.bucket, "limit": 100}
    first = (await agent.get("/logs/gcs", params={**params, "since": "1h"})).json()
    later = await agent.get(
        "/logs/gcs",
        params={**params, "since": "5m", "cursor": first["next_cursor"]},
    )
    assert later.status_code == 200, later.text
    body = later.json()
    stamps = [parse_time_ns(e[0], 0) for stream in body["streams"] for e in stream["entries"]]
    since, until = parse_time_ns(body["window"]["since"], 0), parse_time_ns(body["window"]["until"], 0)
    assert stamps and all(since <= stamp < until for stamp in stamps)
    assert min(stamps) < incident.now_ns - 5 * 60 * NS  # older than the words' 5 minutes
