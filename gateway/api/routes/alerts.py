"""The Alertmanager webhook (v4 payload) and the list of recent notifications for agents."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Query, Request
from pydantic import ValidationError

from gateway.api.bodies import read_bounded
from gateway.api.deps import Principal, SettingsDep, require_scope
from gateway.api.routes.summary import chat_model_for
from gateway.config import GatewaySettings
from gateway.errors import ApiError
from gateway.metrics import ALERT_FIELDS_TRUNCATED
from gateway.services import redis_client
from gateway.services.alert_bounds import bounded_payload
from gateway.services.alert_store_redis import RedisAlertStore
from gateway.services.alerts import (
    AlertProcessor,
    AlertStore,
    ContextScope,
    Forwarder,
    GenericWebhookReceiver,
    MemoryAlertStore,
    Receiver,
    SlackReceiver,
    WebhookPayload,
    visible_entry,
)
from gateway.services.events import LokiEventWriter
from gateway.services.redact import redact
from gateway.services.summarize import Summarizer, SummaryQuery

log = logging.getLogger(__name__)

ALERT_CONTEXT_MAX_LINES = 2_000
ALERT_CONTEXT_PROMPT_BYTES = 4_000
ALERT_CONTEXT_COMPLETION_TOKENS = 300
MAX_LIST_LIMIT = 1000
MAX_ERRORS_SHOWN = 5


async def build_store(settings: GatewaySettings) -> AlertStore:
    """Redis when REDIS_URL is set (shared by replicas, kept across gateway restarts; answering
    yet or not: see redis_client), else memory."""
    client = await redis_client.connect(settings, "alert store")  # None without REDIS_URL
    if client is not None:
        return RedisAlertStore(client, settings.alerts_max_stored, max_bytes=settings.alerts_max_bytes)
    return MemoryAlertStore(settings.alerts_max_stored, max_bytes=settings.alerts_max_bytes)


def build_processor(app: FastAPI, store: AlertStore) -> AlertProcessor:
    settings: GatewaySettings = app.state.settings
    receivers: list[Receiver] = []
    if settings.alert_slack_webhook_url:
        receivers.append(SlackReceiver(settings.alert_slack_webhook_url.get_secret_value()))
    if settings.alert_forward_webhook_url:
        receivers.append(GenericWebhookReceiver(settings.alert_forward_webhook_url.get_secret_value()))
    loki = getattr(app.state, "loki", None)
    summarise = None
    if loki is not None:
        # cached: Alertmanager repeats a firing notification every repeat_interval, and the
        # context window (around startsAt) is the same each time
        summarizer = Summarizer(
            loki, redact, chat_model_for(app), cache=app.state.cache,
            cache_ttl_seconds=settings.summary_cache_ttl_seconds,
        )

        async def summarise(selector: str, start_ns: int, end_ns: int, tenant: str | None) -> dict[str, Any]:
            return await summarizer.summarize(
                SummaryQuery(
                    query=selector,
                    start_ns=start_ns,
                    end_ns=end_ns,
                    max_lines=ALERT_CONTEXT_MAX_LINES,
                    tenant=tenant,
                    prompt_max_bytes=ALERT_CONTEXT_PROMPT_BYTES,
                    completion_tokens=ALERT_CONTEXT_COMPLETION_TOKENS,
                )
            )

    return AlertProcessor(
        store,
        LokiEventWriter(app.state.http, settings.loki_url, settings.loki_tenant_id),
        Forwarder(app.state.http, receivers),
        summarise,
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    store = await build_store(app.state.settings)
    app.state.alerts = build_processor(app, store)
    try:
        yield
    finally:
        await store.close()


router = APIRouter(tags=["alerts"], lifespan=_lifespan)


def get_processor(request: Request) -> AlertProcessor:
    processor = getattr(request.app.state, "alerts", None)
    if processor is None:
        raise ApiError(503, "alerts_unavailable", "the alert store is not running", "retry shortly")
    return processor  # type: ignore[no-any-return]


ProcessorDep = Annotated[AlertProcessor, Depends(get_processor)]


def _validation_message(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors()[:MAX_ERRORS_SHOWN]
    ]
    more = len(exc.errors()) - MAX_ERRORS_SHOWN
    return "not an Alertmanager v4 webhook payload: " + "; ".join(problems) + (
        f" (and {more} more)" if more > 0 else ""
    )


@router.post("/api/monitoring/alerts/webhook")
async def alertmanager_webhook(
    request: Request,
    background: BackgroundTasks,
    processor: ProcessorDep,
    principal: Annotated[Principal, Depends(require_scope("alerts:write"))],
    settings: SettingsDep,
) -> dict[str, Any]:
    """Stores the notification (one entry per fingerprint) and answers at once; log context (read
    with this key's label policy and tenant), the Loki event and forwarding run after the answer
    and never turn it into an error."""
    # Alertmanager sends at most `max_alerts` (the payload allows 1000) of a few KB each
    body = await read_bounded(
        request, settings.alerts_webhook_max_bytes,
        "set max_alerts in Alertmanager's webhook_config to send fewer alerts per notification",
    )
    try:
        payload = WebhookPayload.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(
            422, "invalid_alert_payload", _validation_message(exc),
            "send Alertmanager's webhook body (version 4) as JSON; see "
            "https://prometheus.io/docs/alerting/latest/configuration/#webhook_config",
        ) from exc
    payload, truncated = bounded_payload(payload, settings.alerts_entry_max_bytes)
    if truncated:
        ALERT_FIELDS_TRUNCATED.inc(truncated)
        log.warning("cut %d oversized strings or keys from a notification (ALERTS_ENTRY_MAX_BYTES)",
                    truncated)
    entries = await processor.store_payload(payload)
    scope = ContextScope(principal.label_policy, principal.tenant or settings.loki_tenant_id)
    background.add_task(processor.process, payload, entries, scope)
    return {
        "status": "stored",
        "stored": len(entries),
        "fingerprints": [entry["fingerprint"] for entry in entries],
    }


@router.get("/api/monitoring/alerts")
async def list_alerts(
    processor: ProcessorDep,
    principal: Annotated[Principal, Depends(require_scope("alerts:read"))],
    settings: SettingsDep,
    status: Annotated[Literal["firing", "resolved", "all"], Query()] = "all",
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
) -> dict[str, Any]:
    """Recent notifications, most recently updated first, with their log context where it was
    read within this key's own label policy and tenant."""
    tenant = principal.tenant or settings.loki_tenant_id
    stored = await processor.store.list(status, limit)
    alerts = [visible_entry(entry, principal.label_policy, tenant) for entry in stored]
    return {"status": status, "count": len(alerts), "alerts": alerts}
