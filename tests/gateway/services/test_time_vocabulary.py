"""One time vocabulary: since/until/hours (RFC 3339, Unix, 2h, Grafana's now-2h) on every route and
body, including the summary body, which took only RFC 3339 start/end."""

from __future__ import annotations

import time

import pytest

from gateway.errors import Failure
from gateway.security import Principal
from gateway.services.summary_request import SummaryRequest, summary_query
from gateway.services.times import parse_time_ns
from tests.gateway.conftest import make_settings

NS = 1_000_000_000
HOUR = 3600 * NS
NOW = 1_780_000_000 * NS


def test_grafana_relative_times_are_taken_like_ours() -> None:
    assert parse_time_ns("now-1h", NOW) == parse_time_ns("1h", NOW) == NOW - HOUR
    assert parse_time_ns("now-1h30m", NOW) == NOW - HOUR - 30 * 60 * NS
    assert parse_time_ns("now", NOW) == NOW
    with pytest.raises(Failure) as bad:
        parse_time_ns("now-", NOW)
    assert bad.value.code == "invalid_time" and "now-1h" in bad.value.hint


PRINCIPAL = Principal("t", frozenset({"summary"}))


def test_the_summary_body_takes_since_until_and_hours() -> None:
    settings = make_settings(ai_monitoring_api_key="k" * 8 + "abcdefghijklmnopqrstuvwxyz")
    before = time.time_ns()
    relative = summary_query(
        SummaryRequest(source="pod", since="now-3h", until="now-1h"), settings, PRINCIPAL
    )
    assert relative.end_ns - relative.start_ns == 2 * HOUR
    assert abs(relative.end_ns - (before - HOUR)) < 120 * NS  # round_window moves it by at most a minute
    by_hours = summary_query(SummaryRequest(source="pod", hours=2), settings, PRINCIPAL)
    assert by_hours.end_ns - by_hours.start_ns == 2 * HOUR
    unix = summary_query(
        SummaryRequest(source="pod", since=str(NOW // NS - 1800), until=str(NOW // NS)), settings, PRINCIPAL
    )
    assert unix.end_ns - unix.start_ns == HOUR // 2
    with pytest.raises(Failure) as both:
        summary_query(
            SummaryRequest.model_validate({"source": "pod", "since": "2h", "end": "2026-01-01T00:00:00Z"}),
            settings,
            PRINCIPAL,
        )
    assert both.value.code == "invalid_time"
    with pytest.raises(Failure) as too_long:
        summary_query(SummaryRequest(source="pod", hours=100), settings, PRINCIPAL)
    assert too_long.value.code == "range_too_long"
