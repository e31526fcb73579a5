"""POST /api/monitoring/alerts/webhook and GET /api/monitoring/alerts in process: payload
validation, the store keyed by fingerprint, log context from Loki, the kind="alert" event and
forwarding. Loki and the receivers are mocked at the HTTP layer with respx."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as redis_asyncio
import respx

from gateway.api.deps import started
from gateway.main import create_app
from gateway.services.alerts import (
    CONTEXT_ALERTS_PER_NOTIFICATION,
    HIDDEN_CONTEXT,
    AlertProcessor,
    Change,
    ContextScope,
    Forwarder,
    GenericWebhookReceiver,
    MemoryAlertStore,
    WebhookPayload,
)
from gateway.services.alerts.redis_store import RedisAlertStore
from tests import redis_server as redis_fixtures
from tests.conftest import free_port
from tests.gateway.conftest import LOKI_TEST_URL, make_settings
from tests.gateway.loki_answers import recorded_streams

redis_server = redis_fixtures.redis_server
redis_url = redis_fixtures.redis_url

QUERY_RANGE = f"{LOKI_TEST_URL}/loki/api/v1/query_range"
PUSH = f"{LOKI_TEST_URL}/loki/api/v1/push"
SLACK_URL = "http://hooks.test/services/T000/B000/XXXX"
GENERIC_URL = "http://hooks.test/generic"
WEBHOOK = "/api/monitoring/alerts/webhook"
STARTS_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
# Older than its context window's end (startsAt + 5 min): every notification asks for one window.
SETTLED_STARTS_AT = STARTS_AT - timedelta(minutes=30)


def alert(
    status: str = "firing", fingerprint: str = "fp0001", starts_at: datetime = STARTS_AT, **labels: str
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "PodCrashLooping",
            "severity": "critical",
            "job": "loki",
            "source": "pod",
            "service_name": "payments",
            **labels,
        },
        "annotations": {"summary": "payments pods crash"},
        "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
        "endsAt": (starts_at + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        if status == "resolved"
        else "0001-01-01T00:00:00Z",
        "generatorURL": "http://loki:3100/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="PodCrashLooping"}',
        "truncatedAlerts": 0,
        "status": alerts[0]["status"],
        "receiver": "gateway",
        "groupLabels": {"alertname": "PodCrashLooping"},
        "commonLabels": alerts[0]["labels"],
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def streams(request: httpx.Request) -> httpx.Response:
    start = int(request.url.params["start"])
    values = [[str(start + i * 1_000_000_000), f"panic: nil map write in handler {i}", {}] for i in range(25)]
    result = [{"stream": {"source": "pod", "service_name": "payments", "level": "error"}, "values": values}]
    return recorded_streams(result)


@pytest.fixture
def mocks() -> respx.MockRouter:
    with respx.mock(assert_all_called=False) as router:
        router.get(QUERY_RANGE, name="loki_query").mock(side_effect=streams)
        router.post(PUSH, name="loki_push").mock(return_value=httpx.Response(204))
        router.post(SLACK_URL, name="slack").mock(return_value=httpx.Response(200, text="ok"))
        router.post(GENERIC_URL, name="generic").mock(return_value=httpx.Response(202))
        yield router


@pytest.fixture(params=["memory", "redis"])
def alerts_app(request: pytest.FixtureRequest, api_key: str) -> Any:
    """The same behaviour with the in-memory store and with a real Redis (REDIS_URL)."""
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return create_app(
        make_settings(
            ai_monitoring_api_key=api_key,
            alert_slack_webhook_url=SLACK_URL,
            alert_forward_webhook_url=GENERIC_URL,
            alerts_max_stored=3,
            redis_url=redis_url,
        )
    )


async def test_firing_alert_is_stored_enriched_recorded_and_forwarded(
    alerts_app: Any, client_for: Any, api_key: str, mocks: respx.MockRouter
) -> None:
    async with client_for(alerts_app) as client:
        response = await client.post(
            WEBHOOK, json=payload(alert()), headers={"Authorization": f"ApiKey {api_key}"}
        )
        listed = await client.get(
            "/api/monitoring/alerts", params={"status": "firing"}, headers={"x-api-key": api_key}
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "stored", "stored": 1, "fingerprints": ["fp0001"]}

    # log context: only the alert labels that are stream labels reach LogQL, around startsAt
    context_query = mocks["loki_query"].calls.last.request.url.params
    assert context_query["query"] == '{source="pod",service_name="payments"}'
    start = int(context_query["start"])
    assert start == int((STARTS_AT - timedelta(minutes=10)).timestamp()) * 1_000_000_000

    # the kind="alert" event, in Loki's JSON push format
    push = mocks["loki_push"].calls.last.request
    assert push.headers["content-type"] == "application/json"
    pushed = json.loads(push.content)["streams"]
    assert pushed[0]["stream"] == {
        "source": "gateway",
        "service_name": "gateway",
        "kind": "alert",
        "level": "critical",
    }
    ts, line = pushed[0]["values"][0]
    assert ts.isdigit() and len(ts) == 19
    event = json.loads(line)
    assert event["fingerprint"] == "fp0001" and event["status"] == "firing"
    assert "x25" in event["summary"]

    slack = json.loads(mocks["slack"].calls.last.request.content)
    assert set(slack) == {"text"}
    assert "*PodCrashLooping* (firing)" in slack["text"] and "payments pods crash" in slack["text"]
    generic = json.loads(mocks["generic"].calls.last.request.content)
    assert generic["status"] == "firing"
    assert generic["alerts"][0]["context"]["top_templates"][0]["count"] == 25

    body = listed.json()
    assert body["count"] == 1
    stored = body["alerts"][0]
    assert stored["fingerprint"] == "fp0001" and stored["status"] == "firing"
    assert stored["forwarded"] == {"slack": "ok", "webhook": "ok"}
    assert stored["context"]["lines_read"] == 25
    assert stored["context"]["top_templates"][0]["template"] == "panic: nil map write in handler <NUM>"


async def test_resolved_updates_the_same_entry(
    alerts_app: Any, client_for: Any, auth_headers: dict[str, str], mocks: respx.MockRouter
) -> None:
    async with client_for(alerts_app) as client:
        assert (await client.post(WEBHOOK, json=payload(alert()), headers=auth_headers)).status_code == 200
        resolved = await client.post(WEBHOOK, json=payload(alert("resolved")), headers=auth_headers)
        assert resolved.status_code == 200
        everything = (await client.get("/api/monitoring/alerts", headers=auth_headers)).json()
        firing = (await client.get("/api/monitoring/alerts?status=firing", headers=auth_headers)).json()
        done = (await client.get("/api/monitoring/alerts?status=resolved", headers=auth_headers)).json()
    assert everything["count"] == 1 and firing["count"] == 0 and done["count"] == 1
    entry = done["alerts"][0]
    assert entry["status"] == "resolved" and entry["notifications"] == 2
    assert entry["ends_at"] == (STARTS_AT + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    assert entry["context"]["lines_read"] == 25  # the context gathered while firing stays
    assert mocks["loki_query"].call_count == 2  # previous + current window, for the firing one only


async def test_a_repeated_firing_notification_reuses_the_cached_context(
    alerts_app: Any, client_for: Any, auth_headers: dict[str, str], mocks: respx.MockRouter
) -> None:
    async with client_for(alerts_app) as client:
        for _ in range(3):
            body = payload(alert(starts_at=SETTLED_STARTS_AT))
            response = await client.post(WEBHOOK, json=body, headers=auth_headers)
            assert response.status_code == 200
        entry = (await client.get("/api/monitoring/alerts", headers=auth_headers)).json()["alerts"][0]
    assert entry["notifications"] == 3 and entry["context"]["lines_read"] == 25
    assert mocks["loki_query"].call_count == 2
    assert mocks["loki_push"].call_count == 3  # each notification is still recorded


async def test_store_is_bounded(
    alerts_app: Any, client_for: Any, auth_headers: dict[str, str], mocks: respx.MockRouter
) -> None:
    async with client_for(alerts_app) as client:
        for n in range(5):
            await client.post(WEBHOOK, json=payload(alert(fingerprint=f"fp{n}")), headers=auth_headers)
        listed = (await client.get("/api/monitoring/alerts", headers=auth_headers)).json()
    assert [a["fingerprint"] for a in listed["alerts"]] == ["fp4", "fp3", "fp2"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({**payload(alert()), "version": "3"}, "version"),
        (payload({**alert(), "fingerprint": ""}), "alerts.0.fingerprint"),
        ({k: v for k, v in payload(alert()).items() if k != "alerts"}, "alerts: Field required"),
        (payload({**alert(), "status": "pending"}), "alerts.0.status"),
        (payload({**alert(), "startsAt": "yesterday"}), "alerts.0.startsAt"),
    ],
)
async def test_malformed_payload_is_a_422_envelope(
    client: httpx.AsyncClient, auth_headers: dict[str, str], body: dict[str, Any], expected: str
) -> None:
    response = await client.post(WEBHOOK, json=body, headers=auth_headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_alert_payload"
    assert error["message"].startswith("not an Alertmanager v4 webhook payload")
    assert expected in error["message"]
    assert "webhook_config" in error["hint"]


async def test_non_json_body_is_a_422_envelope(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.post(WEBHOOK, content=b"{not json", headers=auth_headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_alert_payload"


async def test_a_failing_receiver_never_fails_the_webhook(
    alerts_app: Any, client_for: Any, auth_headers: dict[str, str], mocks: respx.MockRouter
) -> None:
    mocks["slack"].mock(return_value=httpx.Response(503))
    mocks["generic"].mock(side_effect=httpx.ConnectError("refused"))
    mocks["loki_push"].mock(return_value=httpx.Response(500))
    async with client_for(alerts_app) as client:
        response = await client.post(WEBHOOK, json=payload(alert()), headers=auth_headers)
        stored = (await client.get("/api/monitoring/alerts", headers=auth_headers)).json()["alerts"][0]
    assert response.status_code == 200
    assert mocks["slack"].call_count == 3 and mocks["generic"].call_count == 3  # retried
    assert stored["forwarded"] == {"slack": "failed: HTTP 503", "webhook": "failed: ConnectError"}


async def test_scopes_are_enforced(keys_file: Any, client_for: Any, mocks: respx.MockRouter) -> None:
    reader = keys_file.add("agent", ["alerts:read"])
    writer = keys_file.add("alertmanager", ["alerts:write"])
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path))
    async with client_for(app) as client:
        denied = await client.post(
            WEBHOOK, json=payload(alert()), headers={"Authorization": f"ApiKey {reader}"}
        )
        allowed = await client.post(
            WEBHOOK, json=payload(alert()), headers={"Authorization": f"ApiKey {writer}"}
        )
        cannot_list = await client.get("/api/monitoring/alerts", headers={"x-api-key": writer})
        listed = await client.get("/api/monitoring/alerts", headers={"x-api-key": reader})
        anonymous = await client.post(WEBHOOK, json=payload(alert()))
    assert denied.status_code == 403 and allowed.status_code == 200
    assert cannot_list.status_code == 403 and listed.json()["count"] == 1
    assert anonymous.status_code == 401


async def test_bad_status_filter_is_rejected(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    response = await client.get("/api/monitoring/alerts?status=pending", headers=auth_headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_redis_store_is_shared_by_replicas_and_outlives_them(
    redis_url: str, client_for: Any, auth_headers: dict[str, str], api_key: str, mocks: respx.MockRouter
) -> None:
    def replica() -> Any:
        return create_app(make_settings(ai_monitoring_api_key=api_key, redis_url=redis_url))

    async with client_for(replica()) as first:
        assert (await first.post(WEBHOOK, json=payload(alert()), headers=auth_headers)).status_code == 200
    async with client_for(replica()) as second:  # the first one is gone
        resolved = await second.post(WEBHOOK, json=payload(alert("resolved")), headers=auth_headers)
        assert resolved.status_code == 200
        listed = (await second.get("/api/monitoring/alerts", headers=auth_headers)).json()
    assert listed["count"] == 1
    entry = listed["alerts"][0]
    assert entry["status"] == "resolved" and entry["notifications"] == 2
    assert entry["context"]["lines_read"] == 25  # gathered by the first replica while firing


async def test_a_redis_store_gone_after_start_answers_503_envelopes(
    client: httpx.AsyncClient, app: Any, auth_headers: dict[str, str]
) -> None:
    """Alertmanager retries a non-2xx notification, so 503 is right; a bare 500 is not."""
    processor = started(app).alerts
    processor.store = RedisAlertStore(
        redis_asyncio.from_url(f"redis://127.0.0.1:{free_port()}/0"), max_entries=3
    )
    try:
        posted = await client.post(WEBHOOK, json=payload(alert()), headers=auth_headers)
        listed = await client.get("/api/monitoring/alerts", headers=auth_headers)
    finally:
        await processor.store.close()
    for response in (posted, listed):
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "alert_store_unavailable"


class FailingUpdates(MemoryAlertStore):
    async def update(self, fingerprint: str, change: Change) -> None:
        raise RuntimeError("store went away")


class RecordingEvents:
    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    async def write(self, kind: str, level: str, fields: dict[str, Any]) -> bool:
        self.written.append(fields)
        return True


async def test_processing_goes_on_when_one_step_fails() -> None:
    """A failing store update or log context (here: startsAt Alertmanager's "unset" year 1, whose
    context window cannot be computed) neither raises nor stops the other alerts or forwarding."""
    forwarded: list[dict[str, Any]] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        forwarded.append(json.loads(request.content))
        return httpx.Response(200)

    async def summarize(selector: str, start_ns: int, end_ns: int, tenant: str | None) -> dict[str, Any]:
        return {"summary": "ok", "evidence": []}

    body = payload(alert(fingerprint="a"), {**alert(fingerprint="b"), "startsAt": "0001-01-01T00:00:00Z"})
    parsed = WebhookPayload.model_validate(body)
    store = FailingUpdates(10)
    events = RecordingEvents()
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        processor = AlertProcessor(
            store, events, Forwarder(http, [GenericWebhookReceiver(GENERIC_URL)]), summarize
        )
        entries = await processor.store_payload(parsed)
        await processor.process(parsed, entries, ContextScope())
    assert [event["fingerprint"] for event in events.written] == ["a", "b"]
    assert events.written[0]["summary"] == "ok"
    assert len(forwarded) == 1 and [a["fingerprint"] for a in forwarded[0]["alerts"]] == ["a", "b"]
    assert forwarded[0]["alerts"][1]["context"]["reason"].startswith("log context failed")


async def test_an_oversized_webhook_body_is_a_413_envelope(
    api_key: str, auth_headers: dict[str, str], client_for: Any
) -> None:
    app = create_app(make_settings(ai_monitoring_api_key=api_key, alerts_webhook_max_bytes=1024))
    body = json.dumps(payload(*(alert(fingerprint=f"fp{n}") for n in range(10))))
    assert len(body) > 1024
    headers = {**auth_headers, "content-type": "application/json"}
    async with client_for(app) as client:
        response = await client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and "max_alerts" in error["hint"]


async def test_log_context_is_read_with_the_posting_keys_view_and_shown_only_within_it(
    keys_file: Any, client_for: Any, mocks: respx.MockRouter
) -> None:
    poster = keys_file.add("gcs-alerts", ["alerts:write", "alerts:read"], tenant="team-a",
                           label_policy='{source="gcs"}')
    read = ["alerts:read"]
    readers = {
        "same view": keys_file.add("gcs-reader", read, tenant="team-a", label_policy='{source="gcs"}'),
        "no policy, same tenant": keys_file.add("ops", read, tenant="team-a"),
        "other policy": keys_file.add("pods", read, tenant="team-a", label_policy='{source="pod"}'),
        "other tenant": keys_file.add("team-b", read, tenant="team-b"),
    }
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path))
    async with client_for(app) as client:
        posted = await client.post(WEBHOOK, json=payload(alert()), headers={"x-api-key": poster})
        seen = {
            who: (await client.get("/api/monitoring/alerts", headers={"x-api-key": key})).json()["alerts"]
            for who, key in readers.items()
        }
    assert posted.status_code == 200, posted.text
    # the alert names source="pod": the poster's policy still applies, as to any query of its own
    for call in mocks["loki_query"].calls:
        assert call.request.url.params["query"] == '{source="pod",service_name="payments",source="gcs"}'
        assert call.request.headers["X-Scope-OrgID"] == "team-a"
    assert mocks["loki_query"].calls
    for who in ("same view", "no policy, same tenant"):
        assert seen[who][0]["context"]["top_templates"], who
    for who in ("other policy", "other tenant"):
        (entry,) = seen[who]
        assert entry["labels"]["alertname"] == "PodCrashLooping"  # the alert itself is Alertmanager's
        assert entry["context"] == {"summary": None, "reason": HIDDEN_CONTEXT}
    assert all("context_scope" not in entry for alerts in seen.values() for entry in alerts)


async def test_one_notification_reads_log_context_for_a_bounded_number_of_alerts(
    api_key: str, client_for: Any, mocks: respx.MockRouter
) -> None:
    count = CONTEXT_ALERTS_PER_NOTIFICATION + 5
    storm = [alert(fingerprint=f"fp{i:04d}", service_name=f"svc{i}") for i in range(count)]
    app = create_app(make_settings(ai_monitoring_api_key=api_key, alerts_max_stored=100))
    async with client_for(app) as client:
        posted = await client.post(WEBHOOK, json=payload(*storm), headers={"x-api-key": api_key})
        listed = (await client.get("/api/monitoring/alerts", headers={"x-api-key": api_key})).json()["alerts"]
    assert posted.status_code == 200 and posted.json()["stored"] == len(storm)  # every alert is stored
    services = {call.request.url.params["query"] for call in mocks["loki_query"].calls}
    assert len(services) == CONTEXT_ALERTS_PER_NOTIFICATION
    reasons = [entry["context"].get("reason") or "" for entry in listed]
    assert sum(reason.startswith("not read: over") for reason in reasons) == 5
