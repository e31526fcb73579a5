"""The gateway's own events, pushed to Loki as JSON lines on the stream
{source="gateway", service_name="gateway", kind=<summary|alert|audit>, level=<level>}."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal, Protocol

import httpx

from gateway.services.bounded_http import request_within

log = logging.getLogger(__name__)

PUSH_PATH = "/loki/api/v1/push"
PUSH_TIMEOUT_SECONDS = 5.0
EventKind = Literal["summary", "alert", "audit"]
EVENT_LEVELS = ("debug", "info", "warn", "error", "critical", "unknown")


class EventWriter(Protocol):
    async def write(self, kind: EventKind, level: str, fields: dict[str, Any]) -> bool: ...


def push_body(kind: EventKind, level: str, fields: dict[str, Any], ts_ns: int) -> dict[str, Any]:
    stream = {
        "source": "gateway",
        "service_name": "gateway",
        "kind": kind,
        "level": level if level in EVENT_LEVELS else "unknown",
    }
    line = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=str)
    return {"streams": [{"stream": stream, "values": [[str(ts_ns), line]]}]}


class LokiEventWriter:
    """Best effort: a failed push is logged and reported as False, never raised, because an
    event is a record of work already done (a summary answered, an alert stored)."""

    def __init__(self, http: httpx.AsyncClient, loki_url: str, tenant: str | None = None) -> None:
        self._http = http
        self._url = loki_url.rstrip("/") + PUSH_PATH
        self._headers = {"Content-Type": "application/json"}
        if tenant:
            self._headers["X-Scope-OrgID"] = tenant

    async def write(self, kind: EventKind, level: str, fields: dict[str, Any]) -> bool:
        body = push_body(kind, level, fields, time.time_ns())
        try:
            response = await request_within(
                self._http,
                "POST",
                self._url,
                PUSH_TIMEOUT_SECONDS,
                content=json.dumps(body).encode(),
                headers=self._headers,
            )
        except httpx.HTTPError as exc:
            log.warning("could not write a %s event to Loki: %s", kind, type(exc).__name__)
            return False
        if not response.is_success:
            log.warning("Loki refused a %s event: HTTP %s", kind, response.status_code)
            return False
        return True
