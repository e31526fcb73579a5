"""Alertmanager notifications: the v4 webhook payload, a bounded store keyed by fingerprint
(firing -> resolved updates one entry), log-context enrichment and forwarding to receivers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from gateway.services.alert_bounds import entry_bytes
from gateway.services.bounded_http import request_within
from gateway.services.events import EventWriter
from gateway.services.logql import inject_policy, parse_policy, scan_query
from gateway.services.summarize import selector_from_labels
from gateway.services.times import SupportedDatetime

log = logging.getLogger(__name__)

AlertStatus = Literal["firing", "resolved"]
# Alert labels that are also stream labels (DESIGN.md); everything else never reaches LogQL.
STREAM_LABELS = ("source", "service_name", "bucket", "prefix", "collection", "namespace", "pod", "container")
CONTEXT_BEFORE = timedelta(minutes=10)
CONTEXT_AFTER = timedelta(minutes=5)
FORWARD_ATTEMPTS = 3
FORWARD_BACKOFF_SECONDS = 0.5
FORWARD_TIMEOUT_SECONDS = 5.0
# Each firing alert's context is two Loki queries (its window and the one before) and maybe a
# model call: a storm of a thousand alerts in one notification must not become thousands of them.
CONTEXT_ALERTS_PER_NOTIFICATION = 20
CONTEXT_READS_AT_ONCE = 2
DEFAULT_ALERTS_MAX_BYTES = 64 * 1024 * 1024
HIDDEN_CONTEXT = "read under another key's label policy or tenant"
_TOO_MANY_FOR_CONTEXT = f"not read: over {CONTEXT_ALERTS_PER_NOTIFICATION} firing alerts in one notification"


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: SupportedDatetime
    endsAt: SupportedDatetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=128)


class WebhookPayload(BaseModel):
    """https://prometheus.io/docs/alerting/latest/configuration/#webhook_config (version 4)."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int = Field(default=0, ge=0)
    status: AlertStatus
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[WebhookAlert] = Field(min_length=1, max_length=1000)


def _iso(value: datetime | None) -> str | None:
    if value is None or value.year <= 1:  # Alertmanager sends 0001-01-01T00:00:00Z for "not set"
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class AlertStore(Protocol):
    async def upsert(self, alert: WebhookAlert, payload: WebhookPayload) -> dict[str, Any]: ...

    async def update(self, fingerprint: str, fields: dict[str, Any]) -> None: ...

    async def list(self, status: str = "all", limit: int = 100) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


def new_entry(
    alert: WebhookAlert, payload: WebhookPayload, previous: dict[str, Any] | None
) -> dict[str, Any]:
    """The stored entry after this notification: `previous` (same fingerprint) updated."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    entry = dict(previous or {})
    entry.update(
        fingerprint=alert.fingerprint,
        status=alert.status,
        labels=alert.labels,
        annotations=alert.annotations,
        starts_at=_iso(alert.startsAt),
        ends_at=_iso(alert.endsAt) if alert.status == "resolved" else None,
        generator_url=alert.generatorURL,
        receiver=payload.receiver,
        group_key=payload.groupKey,
        external_url=payload.externalURL,
        first_received=entry.get("first_received", now),
        last_received=now,
        notifications=int(entry.get("notifications", 0)) + 1,
    )
    entry.setdefault("context", None)
    entry.setdefault("forwarded", {})
    return entry


class MemoryAlertStore:
    """Most recently updated first; the least recently updated entries go when there are more
    than `max_entries` or their JSON takes more than `max_bytes` (the newest always stays)."""

    def __init__(self, max_entries: int, *, max_bytes: int = DEFAULT_ALERTS_MAX_BYTES) -> None:
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        self._max = max(1, max_entries)
        self._max_bytes = max_bytes
        self._lock = asyncio.Lock()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    async def upsert(self, alert: WebhookAlert, payload: WebhookPayload) -> dict[str, Any]:
        async with self._lock:
            entry = new_entry(alert, payload, self._entries.pop(alert.fingerprint, None))
            self._entries[alert.fingerprint] = entry
            self._resize(alert.fingerprint)
            while len(self._entries) > 1 and (
                len(self._entries) > self._max or self._bytes > self._max_bytes
            ):
                oldest, _ = self._entries.popitem(last=False)
                self._bytes -= self._sizes.pop(oldest)
            return dict(entry)

    async def update(self, fingerprint: str, fields: dict[str, Any]) -> None:
        async with self._lock:
            entry = self._entries.get(fingerprint)
            if entry is not None:
                entry.update(fields)
                self._resize(fingerprint)

    def _resize(self, fingerprint: str) -> None:
        size = entry_bytes(self._entries[fingerprint])
        self._bytes += size - self._sizes.get(fingerprint, 0)
        self._sizes[fingerprint] = size

    async def list(self, status: str = "all", limit: int = 100) -> list[dict[str, Any]]:
        async with self._lock:
            newest_first = reversed(self._entries.values())
            chosen = [dict(e) for e in newest_first if status == "all" or e["status"] == status]
        return chosen[:limit]

    async def close(self) -> None:
        self._entries.clear()
        self._sizes.clear()
        self._bytes = 0


def context_selector(labels: dict[str, str]) -> str | None:
    """A stream selector from the alert labels that are stream labels; None when there are none."""
    return selector_from_labels({name: labels[name] for name in STREAM_LABELS if labels.get(name)})


def context_window(starts_at: datetime, now: datetime | None = None) -> tuple[int, int]:
    now = now or datetime.now(UTC)
    start = starts_at - CONTEXT_BEFORE
    end = min(starts_at + CONTEXT_AFTER, now)
    if end <= start:
        end = start + timedelta(minutes=1)
    return int(start.timestamp()) * 1_000_000_000, int(end.timestamp()) * 1_000_000_000


@dataclass(frozen=True)
class ContextScope:
    """Whose view an alert's log context is read with: the label policy and Loki tenant of the key
    that posted the notification, as for any query of that key."""

    label_policy: str | None = None
    tenant: str | None = None

    def dump(self) -> dict[str, str | None]:
        return {"label_policy": self.label_policy, "tenant": self.tenant}

    def readable_by(self, label_policy: str | None, tenant: str | None) -> bool:
        """A reader sees the context when it was read within the reader's own view: the reader
        has no policy or this same one, and the same tenant."""
        return label_policy in (None, self.label_policy) and tenant == self.tenant


def visible_entry(entry: dict[str, Any], label_policy: str | None, tenant: str | None) -> dict[str, Any]:
    """A stored entry as a reader with `label_policy` and `tenant` may see it: without the log
    context when that was read under another key's view."""
    shown = {k: v for k, v in entry.items() if k != "context_scope"}
    scope = ContextScope(**entry.get("context_scope") or {})
    if shown.get("context") is not None and not scope.readable_by(label_policy, tenant):
        shown["context"] = {"summary": None, "reason": HIDDEN_CONTEXT}
    return shown


# --- receivers -----------------------------------------------------------------------------


class Receiver(Protocol):
    name: str

    def body(self, payload: WebhookPayload, entries: list[dict[str, Any]]) -> dict[str, Any]: ...

    @property
    def url(self) -> str: ...


class GenericWebhookReceiver:
    name = "webhook"

    def __init__(self, url: str) -> None:
        self.url = url

    def body(self, payload: WebhookPayload, entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "source": "loki-gateway",
            "status": payload.status,
            "receiver": payload.receiver,
            "groupKey": payload.groupKey,
            "groupLabels": payload.groupLabels,
            "externalURL": payload.externalURL,
            "alerts": entries,
        }


class SlackReceiver:
    """A Slack-compatible incoming webhook (https://api.slack.com/messaging/webhooks): `text`
    is the fallback and the whole message for simple compatible servers."""

    name = "slack"

    def __init__(self, url: str) -> None:
        self.url = url

    def body(self, payload: WebhookPayload, entries: list[dict[str, Any]]) -> dict[str, Any]:
        lines = []
        for entry in entries:
            name = entry["labels"].get("alertname", "alert")
            where = ", ".join(f"{k}={entry['labels'][k]}" for k in STREAM_LABELS if k in entry["labels"])
            icon = ":red_circle:" if entry["status"] == "firing" else ":large_green_circle:"
            lines.append(f"{icon} *{name}* ({entry['status']}) {where}".rstrip())
            about = entry["annotations"].get("summary") or entry["annotations"].get("description")
            if about:
                lines.append(f"> {about}")
            context = entry.get("context") or {}
            if context.get("summary"):
                lines.append(f"```{context['summary'][:1500]}```")
        return {"text": "\n".join(lines)[:3900]}


class Forwarder:
    def __init__(
        self,
        http: httpx.AsyncClient,
        receivers: list[Receiver],
        *,
        attempts: int = FORWARD_ATTEMPTS,
        backoff_seconds: float = FORWARD_BACKOFF_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._receivers = receivers
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._sleep = sleep

    @property
    def configured(self) -> bool:
        return bool(self._receivers)

    async def _send(self, receiver: Receiver, body: dict[str, Any]) -> str:
        outcome = "not sent"
        for attempt in range(self._attempts):
            if attempt:
                await self._sleep(self._backoff * 2 ** (attempt - 1))
            try:
                response = await request_within(
                    self._http, "POST", receiver.url, FORWARD_TIMEOUT_SECONDS, json=body
                )
            except httpx.HTTPError as exc:
                outcome = f"failed: {type(exc).__name__}"
                continue
            if response.is_success:
                return "ok"
            outcome = f"failed: HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break  # the receiver rejects this body; resending will not help
        # never log the URL: incoming-webhook URLs are credentials
        log.warning("forwarding alerts to the %s receiver %s", receiver.name, outcome)
        return outcome

    async def forward(self, payload: WebhookPayload, entries: list[dict[str, Any]]) -> dict[str, str]:
        outcomes = await asyncio.gather(
            *(self._send(receiver, receiver.body(payload, entries)) for receiver in self._receivers)
        )
        return {receiver.name: outcome for receiver, outcome in zip(self._receivers, outcomes, strict=True)}


# --- processing ------------------------------------------------------------------------------

ContextSummariser = Callable[[str, int, int, str | None], Awaitable[dict[str, Any]]]  # query, window, tenant


class AlertProcessor:
    """Store first (so the webhook can answer 200), then enrich, record and forward."""

    def __init__(
        self,
        store: AlertStore,
        events: EventWriter,
        forwarder: Forwarder,
        summarise_context: ContextSummariser | None,
    ) -> None:
        self.store = store
        self._events = events
        self._forwarder = forwarder
        self._summarise = summarise_context
        self._reading = asyncio.Semaphore(CONTEXT_READS_AT_ONCE)  # all notifications together

    async def store_payload(self, payload: WebhookPayload) -> list[dict[str, Any]]:
        return [await self.store.upsert(alert, payload) for alert in payload.alerts]

    async def _context(self, alert: WebhookAlert, scope: ContextScope) -> dict[str, Any]:
        selector = context_selector(alert.labels)
        if selector is None:
            return {"selector": None, "summary": None, "reason": "the alert has no log stream labels"}
        if self._summarise is None:
            return {"selector": selector, "summary": None, "reason": "log context is not configured"}
        try:
            if scope.label_policy:
                selector = inject_policy(scan_query(selector), parse_policy(scope.label_policy)).text
            start_ns, end_ns = context_window(alert.startsAt)
            async with self._reading:
                answer = await self._summarise(selector, start_ns, end_ns, scope.tenant)
        except Exception as exc:  # enrichment is optional; the alert is already stored
            log.warning("log context for alert %s failed: %s", alert.fingerprint, type(exc).__name__)
            return {"selector": selector, "summary": None, "reason": f"log context failed: {exc}"[:300]}
        return {
            "selector": selector,
            "summary": answer.get("summary"),
            "model": answer.get("model"),
            "lines_read": answer.get("lines_read"),
            "window": answer.get("window"),
            "top_templates": [
                {k: row[k] for k in ("id", "template", "count", "change")}
                for row in answer.get("evidence", [])[:5]
            ],
        }

    async def process(
        self, payload: WebhookPayload, entries: list[dict[str, Any]], scope: ContextScope
    ) -> None:
        """Runs after the webhook answered; every failure here is logged, none is raised, and one
        alert failing (e.g. the store's Redis gone) neither stops the others nor the forwarding.
        Log context is read for the first CONTEXT_ALERTS_PER_NOTIFICATION firing alerts only."""
        firing = 0
        for alert, entry in zip(payload.alerts, entries, strict=True):
            firing += alert.status == "firing"
            try:
                await self._enrich_and_record(alert, entry, scope, firing <= CONTEXT_ALERTS_PER_NOTIFICATION)
            except Exception as exc:
                log.warning("processing alert %s failed: %s", alert.fingerprint, type(exc).__name__)
        if self._forwarder.configured:
            try:
                await self._forward(payload, entries)
            except Exception as exc:
                log.warning("forwarding alerts failed: %s", type(exc).__name__)

    async def _enrich_and_record(
        self, alert: WebhookAlert, entry: dict[str, Any], scope: ContextScope, with_context: bool
    ) -> None:
        if alert.status == "firing":
            entry["context"] = await self._context(alert, scope) if with_context else {
                "selector": None, "summary": None, "reason": _TOO_MANY_FOR_CONTEXT,
            }
            await self._update_stored(
                alert.fingerprint, {"context": entry["context"], "context_scope": scope.dump()}
            )
        await self._events.write(
            "alert",
            "info" if alert.status == "resolved" else _event_level(alert.labels),
            {
                "status": alert.status,
                "fingerprint": alert.fingerprint,
                "alertname": alert.labels.get("alertname"),
                "labels": alert.labels,
                "annotations": alert.annotations,
                "starts_at": entry["starts_at"],
                "ends_at": entry["ends_at"],
                "summary": (entry.get("context") or {}).get("summary"),
            },
        )

    async def _forward(self, payload: WebhookPayload, entries: list[dict[str, Any]]) -> None:
        started = time.perf_counter()
        outcomes = await self._forwarder.forward(payload, entries)
        for alert in payload.alerts:
            await self._update_stored(alert.fingerprint, {"forwarded": outcomes})
        elapsed = time.perf_counter() - started
        log.info("forwarded %d alerts in %.2fs: %s", len(entries), elapsed, outcomes)

    async def _update_stored(self, fingerprint: str, fields: dict[str, Any]) -> None:
        """The entry was stored when the webhook answered; losing this later detail is logged."""
        try:
            await self.store.update(fingerprint, fields)
        except Exception as exc:
            log.warning("updating stored alert %s failed: %s", fingerprint, type(exc).__name__)


def _event_level(labels: dict[str, str]) -> str:
    severity = labels.get("severity", "").lower()
    levels = {"critical": "critical", "page": "critical", "warning": "warn", "info": "info"}
    return levels.get(severity, "error")
