"""Tenant header, basic/bearer auth, readiness, settings -> config, and a real HTTP round trip."""

from __future__ import annotations

import time

import httpx
import pytest

from shipper.config import ShipperSettings
from shipper.models import LogRecord
from shipper.sinks import SinkUnavailable
from shipper.sinks.loki import LokiSink, LokiSinkConfig
from tests.loki_mock import LokiMock
from tests.shipper.sinks.loki.conftest import NOW_NS, record


def test_tenant_header_is_sent_when_configured(make_sink) -> None:
    mock = LokiMock(tenant="team-a")
    make_sink(mock, tenant_id="team-a").push([record(1, "x")], source="gcs")
    assert mock.requests[0].headers["x-scope-orgid"] == "team-a"
    mock.assert_clean()


def test_no_tenant_header_without_a_tenant(make_sink) -> None:
    mock = LokiMock()
    make_sink(mock).push([record(1, "x")], source="gcs")
    assert "x-scope-orgid" not in mock.requests[0].headers
    assert "authorization" not in mock.requests[0].headers


def test_wrong_tenant_is_caught_by_the_mock(make_sink) -> None:
    mock = LokiMock(tenant="team-a")
    with pytest.raises(AssertionError, match="X-Scope-OrgID"):
        make_sink(mock, tenant_id="team-b").push([record(1, "x")], source="gcs")


def test_basic_auth(make_sink) -> None:
    mock = LokiMock(basic_auth=("shipper", "s3cret:with:colons"))
    sink = make_sink(mock, username="shipper", password="s3cret:with:colons")
    assert sink.push([record(1, "x")], source="gcs").accepted == 1
    assert mock.requests[0].headers["authorization"].startswith("Basic ")
    assert "s3cret" not in repr(sink.config)  # secrets stay out of reprs/logs


def test_bearer_auth_on_push_and_ready(make_sink) -> None:
    mock = LokiMock(bearer_token="tok-123")
    sink = make_sink(mock, bearer_token="tok-123")
    assert sink.push([record(1, "x")], source="gcs").accepted == 1
    assert mock.requests[0].headers["authorization"] == "Bearer tok-123"
    assert "ready" in sink.ready()
    assert "tok-123" not in repr(sink.config)


def test_conflicting_auth_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="either"):
        LokiSinkConfig(username="u", password="p", bearer_token="t")
    with pytest.raises(ValueError, match="needs a username"):
        LokiSinkConfig(password="p")


def test_ready_reports_or_raises(make_sink) -> None:
    mock = LokiMock()
    sink = make_sink(mock)
    assert sink.ready() == "Loki at http://loki.test:3100 is ready (protobuf push)"
    mock.ready_status = 503
    with pytest.raises(SinkUnavailable, match="not ready: HTTP 503"):
        sink.ready()


def test_from_settings_reads_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("LOKI_URL", "http://loki.example:3100/loki/api/v1/push")
    monkeypatch.setenv("LOKI_TENANT_ID", "tenant-x")
    monkeypatch.setenv("LOKI_BEARER_TOKEN", "tok")
    monkeypatch.setenv("LOKI_PUSH_FORMAT", "json")
    monkeypatch.setenv("BATCH_MAX_BYTES", "2048")
    monkeypatch.setenv("MAX_AGE_HOURS", "12")
    mock = LokiMock(tenant="tenant-x", bearer_token="tok")
    with httpx.Client(transport=httpx.MockTransport(mock.handler)) as client:
        sink = LokiSink.from_settings(ShipperSettings(), client)
        config = sink.config
        assert (config.url, config.tenant_id, config.bearer_token, config.push_format) == (
            "http://loki.example:3100/loki/api/v1/push", "tenant-x", "tok", "json"
        )
        assert (config.batch_max_bytes, config.max_age_hours) == (2048, 12.0)
        fresh = LogRecord(time.time_ns() - 1_000_000_000, "x", {"source": "gcs"})  # the sink's real clock
        assert sink.push([fresh], source="gcs").accepted == 1
    assert mock.requests[0].format == "json"  # and the push URL was not doubled (the mock checks the path)


def test_unset_settings_give_the_sink_its_own_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults live in one place (shipper.loki_defaults): the settings and the sink agree."""
    for name in ShipperSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    assert LokiSinkConfig.from_settings(ShipperSettings()) == LokiSinkConfig()


def test_real_http_round_trip_against_the_served_mock() -> None:
    mock = LokiMock(tenant="t1")
    with mock.serve() as url, httpx.Client(timeout=5) as client:
        sink = LokiSink(LokiSinkConfig(url=url, tenant_id="t1"), client, now_ns=lambda: NOW_NS)
        assert "ready" in sink.ready()
        result = sink.push([record(2, "over the wire", object="o", line_no="1"), record(1, "second")],
                           source="gcs")
    assert result.accepted == 2
    assert sorted((line, meta) for _, _, line, meta in mock.entries()) == [
        ("over the wire", {"object": "o", "line_no": "1"}), ("second", {})
    ]
    mock.assert_clean()


def test_served_mock_drops_the_connection_and_the_sink_retries() -> None:
    from tests.loki_mock import Disconnect, Reply

    mock = LokiMock()
    mock.script(Disconnect(), Reply(429, {"Retry-After": "2"}))
    sleeps: list[float] = []
    with mock.serve() as url, httpx.Client(timeout=5) as client:
        sink = LokiSink(LokiSinkConfig(url=url), client, sleep=sleeps.append, now_ns=lambda: NOW_NS)
        assert sink.push([record(1, "eventually")], source="gcs").accepted == 1
    assert len(sleeps) == 2 and sleeps[1] == 2.0
    assert [line for _, _, line, _ in mock.entries()] == ["eventually"]


def test_credentials_in_the_url_never_reach_messages(make_sink) -> None:
    mock = LokiMock()
    sink = make_sink(mock, url="http://user:hunter2@loki.test:3100")
    assert sink.ready() == "Loki at http://loki.test:3100 is ready (protobuf push)"
    mock.ready_status = 500
    with pytest.raises(SinkUnavailable) as raised:
        sink.ready()
    assert "hunter2" not in str(raised.value)
