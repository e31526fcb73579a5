"""StoredAlert reads the JSON earlier gateway versions wrote (stored dicts, kept in memory or in
Redis by replicas not yet upgraded) and writes it back unchanged, key for key."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as redis_asyncio

from gateway.services.alerts import HIDDEN_CONTEXT, StoredAlert, WebhookPayload, visible_entry
from gateway.services.alerts.receivers import GenericWebhookReceiver
from gateway.services.alerts.redis_store import KEY_PREFIX, RedisAlertStore
from tests import redis_server as redis_fixtures

redis_server = redis_fixtures.redis_server
redis_url = redis_fixtures.redis_url

# as the dict-based store wrote them (generated with that code): a firing alert whose context was
# read and forwarded, one without stream labels, and one fresh from the webhook, not processed yet
READ = json.loads(
    '{"fingerprint": "fp1", "status": "firing", "labels": {"alertname": "X", "source": "pod", '
    '"service_name": "api"}, "annotations": {"summary": "down"}, "starts_at": "2026-11-30T10:00:00Z", '
    '"ends_at": null, "generator_url": "http://prom/graph", "receiver": "gateway", "group_key": "g", '
    '"external_url": "http://am:9093", "first_received": "2026-12-05T16:39:03.251069Z", '
    '"last_received": "2026-12-05T16:39:03.252224Z", "notifications": 2, "context": {"selector": '
    '"{source=\\"pod\\", service_name=\\"api\\"}", "summary": "s", "model": null, "lines_read": 25, '
    '"window": {"start": "a", "end": "b", "previous_start": "c", "previous_end": "d", "step_seconds": 60}, '
    '"top_templates": [{"id": "T1", "template": "panic <NUM>", "count": 25, "change": "new"}]}, '
    '"forwarded": {"webhook": "ok"}, "context_scope": {"label_policy": null, "tenant": "team-a"}}'
)
NOT_READ = json.loads(
    '{"fingerprint": "fp2", "status": "firing", "labels": {"alertname": "Y"}, "annotations": {}, '
    '"starts_at": "2026-11-30T10:00:00Z", "ends_at": null, "generator_url": "", "receiver": "gateway", '
    '"group_key": "g", "external_url": "http://am:9093", "first_received": "2026-12-05T16:39:03.251112Z", '
    '"last_received": "2026-12-05T16:39:03.252251Z", "notifications": 2, "context": {"selector": null, '
    '"summary": null, "reason": "the alert has no log stream labels"}, "forwarded": {"webhook": "ok"}, '
    '"context_scope": {"label_policy": null, "tenant": "team-a"}}'
)
FRESH = {
    key: value for key, value in READ.items() if key != "context_scope"
} | {"context": None, "forwarded": {}, "notifications": 1}


def test_the_old_json_form_loads_and_dumps_unchanged() -> None:
    for raw in (READ, NOT_READ, FRESH):
        dumped = StoredAlert.load(raw).dump()
        assert dumped == raw
        assert list(dumped) == list(raw)  # key order too: the byte bounds count the JSON
        assert json.dumps(dumped) == json.dumps(raw)


def test_an_old_entry_is_shown_only_within_the_view_it_was_read_with() -> None:
    entry = StoredAlert.load(READ)
    assert entry.context is not None and entry.context.top_templates[0].count == 25
    shown = visible_entry(entry, None, "team-a")
    assert shown == {k: v for k, v in READ.items() if k != "context_scope"}
    assert visible_entry(entry, None, "team-b")["context"] == {"summary": None, "reason": HIDDEN_CONTEXT}
    assert visible_entry(StoredAlert.load(FRESH), None, "team-b") == FRESH


def test_receivers_never_get_the_posting_keys_policy_and_tenant() -> None:
    body = GenericWebhookReceiver("http://receiver.test").body(_notification("fp1"), [StoredAlert.load(READ)])
    (sent,) = body["alerts"]
    assert "context_scope" not in sent and sent == {k: v for k, v in READ.items() if k != "context_scope"}
    assert "team-a" not in json.dumps(body)


def _notification(fingerprint: str) -> WebhookPayload:
    alert: dict[str, Any] = {
        "status": "resolved", "labels": {"alertname": "X"}, "annotations": {},
        "startsAt": "2026-11-30T10:00:00Z", "endsAt": "2026-11-30T10:05:00Z", "fingerprint": fingerprint,
    }
    return WebhookPayload.model_validate(
        {"version": "4", "groupKey": "g", "status": "resolved", "receiver": "gateway", "alerts": [alert]}
    )


async def test_redis_entries_written_by_an_older_replica_are_read_and_updated(redis_url: str) -> None:
    raw_client = redis_asyncio.from_url(redis_url)
    encoded = json.dumps(READ).encode()
    await raw_client.set(f"{KEY_PREFIX}entry:fp1", encoded)
    await raw_client.zadd(f"{KEY_PREFIX}order", {"fp1": 1.0})
    await raw_client.set(f"{KEY_PREFIX}bytes", len(encoded))
    await raw_client.aclose()
    store = RedisAlertStore(redis_asyncio.from_url(redis_url), max_entries=10)
    try:
        [listed] = await store.list()
        assert listed.dump() == READ
        payload = _notification("fp1")
        resolved = await store.upsert(payload.alerts[0], payload)
        [again] = await store.list()
        assert again == resolved
        assert (resolved.status, resolved.notifications) == ("resolved", 3)
        assert resolved.first_received == READ["first_received"]
        assert resolved.context == listed.context and resolved.forwarded == {"webhook": "ok"}
        assert await store.size_bytes() == len(json.dumps(resolved.dump()).encode())
    finally:
        await store.close()
