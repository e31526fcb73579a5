"""After a notification is stored: log context for its firing alerts, the kind="alert" event in
Loki and forwarding to the receivers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.services.alerts.models import (
    AlertContext,
    ContextScope,
    StoredAlert,
    TemplateRow,
    WebhookAlert,
    WebhookPayload,
    visible_entry,
)
from gateway.services.alerts.receivers import STREAM_LABELS, Forwarder
from gateway.services.alerts.store import AlertStore, Change
from gateway.services.events import EventWriter
from gateway.services.logql import inject_policy, parse_policy, scan_query
from gateway.services.summarize import Summarizer, SummaryQuery, selector_from_labels

log = logging.getLogger(__name__)

CONTEXT_BEFORE = timedelta(minutes=10)
CONTEXT_AFTER = timedelta(minutes=5)
# Each firing alert's context is two Loki queries (its window and the one before) and maybe a
# model call: a storm of a thousand alerts in one notification must not become thousands of them.
CONTEXT_ALERTS_PER_NOTIFICATION = 20
CONTEXT_READS_AT_ONCE = 2
CONTEXT_MAX_LINES = 2_000
CONTEXT_PROMPT_BYTES = 4_000
CONTEXT_COMPLETION_TOKENS = 300
# one alert's context, waiting for a read slot included: a Loki or model endpoint that never
# answers must not hold the notification's event and forwarding, nor every later context
CONTEXT_DEADLINE_SECONDS = 90.0
TOP_TEMPLATES = 5
_TOO_MANY_FOR_CONTEXT = f"not read: over {CONTEXT_ALERTS_PER_NOTIFICATION} firing alerts in one notification"

# query, window start and end (ns), tenant -> a summary answer (gateway.services.summarize)
ContextSummarizer = Callable[[str, int, int, str | None], Awaitable[dict[str, Any]]]


def summarizer_context(summarizer: Summarizer) -> ContextSummarizer:
    """An alert's context through `summarizer`, with the smaller bounds of an alert context."""

    async def summarize(selector: str, start_ns: int, end_ns: int, tenant: str | None) -> dict[str, Any]:
        return await summarizer.summarize(
            SummaryQuery(
                query=selector,
                start_ns=start_ns,
                end_ns=end_ns,
                max_lines=CONTEXT_MAX_LINES,
                tenant=tenant,
                prompt_max_bytes=CONTEXT_PROMPT_BYTES,
                completion_tokens=CONTEXT_COMPLETION_TOKENS,
            )
        )

    return summarize


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


def context_of(selector: str, answer: dict[str, Any]) -> AlertContext:
    """The part of a summary answer an alert keeps."""
    return AlertContext(
        selector,
        answer.get("summary"),
        model=answer.get("model"),
        lines_read=answer.get("lines_read"),
        window=answer.get("window"),
        top_templates=tuple(TemplateRow.load(row) for row in answer.get("evidence", [])[:TOP_TEMPLATES]),
    )


class AlertProcessor:
    """Store first (so the webhook can answer 200), then enrich, record and forward."""

    def __init__(
        self,
        store: AlertStore,
        events: EventWriter,
        forwarder: Forwarder,
        summarize_context: ContextSummarizer | None,
    ) -> None:
        self.store = store
        self._events = events
        self._forwarder = forwarder
        self._summarize = summarize_context
        self._reading = asyncio.Semaphore(CONTEXT_READS_AT_ONCE)  # all notifications together

    async def store_payload(self, payload: WebhookPayload) -> list[StoredAlert]:
        return [await self.store.upsert(alert, payload) for alert in payload.alerts]

    async def recent(self, status: str, limit: int, scope: ContextScope) -> dict[str, Any]:
        """Recent notifications, most recently updated first, with their log context where it was
        read within `scope`, the caller's own label policy and tenant (REST route and MCP tool)."""
        stored = await self.store.list(status, limit)
        alerts = [visible_entry(entry, scope.label_policy, scope.tenant) for entry in stored]
        return {"status": status, "count": len(alerts), "alerts": alerts}

    async def _context(self, alert: WebhookAlert, scope: ContextScope) -> AlertContext:
        selector = context_selector(alert.labels)
        if selector is None:
            return AlertContext.missing(None, "the alert has no log stream labels")
        if self._summarize is None:
            return AlertContext.missing(selector, "log context is not configured")
        try:
            if scope.label_policy:
                selector = inject_policy(scan_query(selector), parse_policy(scope.label_policy)).text
            start_ns, end_ns = context_window(alert.startsAt)
            async with asyncio.timeout(CONTEXT_DEADLINE_SECONDS), self._reading:
                answer = await self._summarize(selector, start_ns, end_ns, scope.tenant)
            return context_of(selector, answer)
        except TimeoutError:
            late = f"log context not read within {CONTEXT_DEADLINE_SECONDS:g} s"
            log.warning("%s for alert %s", late, alert.fingerprint)
            return AlertContext.missing(selector, late)
        except Exception as exc:  # enrichment is optional; the alert is already stored
            log.warning("log context for alert %s failed: %s", alert.fingerprint, type(exc).__name__)
            return AlertContext.missing(selector, f"log context failed: {exc}"[:300])

    async def process(
        self, payload: WebhookPayload, entries: list[StoredAlert], scope: ContextScope
    ) -> None:
        """Runs after the webhook answered; every failure here is logged, none is raised, and one
        alert failing (e.g. the store's Redis gone) neither stops the others nor the forwarding.
        Log context is read for the first CONTEXT_ALERTS_PER_NOTIFICATION firing alerts only."""
        firing = 0
        enriched: list[StoredAlert] = []
        for alert, entry in zip(payload.alerts, entries, strict=True):
            firing += alert.status == "firing"
            try:
                if alert.status == "firing":
                    entry = await self._enrich(alert, entry, scope, firing <= CONTEXT_ALERTS_PER_NOTIFICATION)
                await self._record(alert, entry)
            except Exception as exc:
                log.warning("processing alert %s failed: %s", alert.fingerprint, type(exc).__name__)
            enriched.append(entry)
        if self._forwarder.configured:
            try:
                await self._forward(payload, enriched)
            except Exception as exc:
                log.warning("forwarding alerts failed: %s", type(exc).__name__)

    async def _enrich(
        self, alert: WebhookAlert, entry: StoredAlert, scope: ContextScope, with_context: bool
    ) -> StoredAlert:
        """`entry` with the firing alert's log context, which is stored too."""
        context = await self._context(alert, scope) if with_context else AlertContext.missing(
            None, _TOO_MANY_FOR_CONTEXT
        )
        await self._update_stored(alert.fingerprint, lambda stored: stored.with_context(context, scope))
        return entry.with_context(context)

    async def _record(self, alert: WebhookAlert, entry: StoredAlert) -> None:
        await self._events.write(
            "alert",
            "info" if alert.status == "resolved" else _event_level(alert.labels),
            {
                "status": alert.status,
                "fingerprint": alert.fingerprint,
                "alertname": alert.labels.get("alertname"),
                "labels": alert.labels,
                "annotations": alert.annotations,
                "starts_at": entry.starts_at,
                "ends_at": entry.ends_at,
                "summary": entry.context.summary if entry.context else None,
            },
        )

    async def _forward(self, payload: WebhookPayload, entries: list[StoredAlert]) -> None:
        started = time.perf_counter()
        outcomes = await self._forwarder.forward(payload, entries)
        for alert in payload.alerts:
            await self._update_stored(alert.fingerprint, lambda stored: stored.with_forwarded(outcomes))
        elapsed = time.perf_counter() - started
        log.info("forwarded %d alerts in %.2fs: %s", len(entries), elapsed, outcomes)

    async def _update_stored(self, fingerprint: str, change: Change) -> None:
        """The entry was stored when the webhook answered; losing this later detail is logged."""
        try:
            await self.store.update(fingerprint, change)
        except Exception as exc:
            log.warning("updating stored alert %s failed: %s", fingerprint, type(exc).__name__)


def _event_level(labels: dict[str, str]) -> str:
    severity = labels.get("severity", "").lower()
    levels = {"critical": "critical", "page": "critical", "warning": "warn", "info": "info"}
    return levels.get(severity, "error")
