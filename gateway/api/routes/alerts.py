"""The Alertmanager webhook (v4 payload) and the list of recent notifications for agents."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from pydantic import ValidationError

from gateway.api.bodies import read_bounded
from gateway.api.deps import AlertsDep, Principal, SettingsDep, require_scope
from gateway.errors import ApiError
from gateway.metrics import ALERT_FIELDS_TRUNCATED
from gateway.services.alert_bounds import bounded_payload
from gateway.services.alerts import ContextScope, WebhookPayload

log = logging.getLogger(__name__)

MAX_LIST_LIMIT = 1000
MAX_ERRORS_SHOWN = 5

router = APIRouter(tags=["alerts"])


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
    processor: AlertsDep,
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
        "fingerprints": [entry.fingerprint for entry in entries],
    }


@router.get("/api/monitoring/alerts")
async def list_alerts(
    processor: AlertsDep,
    principal: Annotated[Principal, Depends(require_scope("alerts:read"))],
    settings: SettingsDep,
    status: Annotated[Literal["firing", "resolved", "all"], Query()] = "all",
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
) -> dict[str, Any]:
    """Recent notifications, most recently updated first, with their log context where it was
    read within this key's own label policy and tenant."""
    scope = ContextScope(principal.label_policy, principal.tenant or settings.loki_tenant_id)
    return await processor.recent(status, limit, scope)
