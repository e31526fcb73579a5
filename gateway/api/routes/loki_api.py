"""Loki's own read API under /loki/api/v1, so that Grafana's Loki data source and logcli work
unchanged through the gateway, with every key's enforcement applied:

- the key from `x-api-key` or `Authorization: Bearer` (logcli --bearer-token, a Grafana custom
  header), the `logs:read` scope, the per-key rate limit and the auth audit event;
- the tenant from the key: only our own headers reach Loki, never the client's X-Scope-OrgID;
- the key's label policy injected into every selector by the LogQL proxy's own functions
  (`prepare_for` for queries that read log lines, with its guardrails; `inject_policy` for the
  index endpoints, where a label listing without a selector gets the policy as its selector);
- the range, limit and byte guardrails, and redaction of returned lines, labels and values.

Push, delete, rules and other admin endpoints are refused (403); anything else unknown is a 404.
Errors carry the gateway's envelope plus a top-level `message`, which Grafana shows as is."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.websockets import WebSocketDisconnect, WebSocketState

from gateway.api.deps import LokiDep, Principal, SettingsDep, require_scope
from gateway.api.responses import FastJSONResponse
from gateway.container import Gateway, running
from gateway.errors import ApiError, Failure, as_api_error, envelope, response_headers
from gateway.services.errors import ServiceError
from gateway.services.logql import check_label_name
from gateway.services.loki_compat import (
    loki_duration,
    loki_time_ns,
    redact_label_sets,
    redact_patterns,
    redact_query_data,
    redact_values,
)
from gateway.services.loki_passthrough import LokiPassthrough, encoding_flags
from gateway.services.loki_read import LOKI_API, LokiRead, step_duration, tail_params, window_params
from gateway.services.loki_tail import relay

PREFIX = LOKI_API
READ_SCOPE = "logs:read"
TAIL_MAX_SECONDS = 300.0  # one tail session; a client opens a new one to go on
TAIL_MAX_LINES = 10_000  # lines relayed by one tail session
TAIL_MAX_SESSIONS_PER_KEY = 3  # per replica; Loki allows 10 tails per tenant by default
WS_NORMAL_CLOSURE, WS_INTERNAL_ERROR = 1000, 1011
WS_MAX_REASON_BYTES = 120  # a close frame's reason must stay under 123 bytes
# Paths of Loki's API that write, delete or administer: refused whatever the key.
REFUSED_PATHS = ("push", "delete", "cache", "rules", "alerts", "prom", "admin", "ingester", "flush")
SINGLE_TENANT_ID = "fake"  # the tenant of a Loki with auth_enabled: false
HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

audit_log = logging.getLogger("gateway.audit")


def _audit(event: dict[str, Any]) -> None:
    """One JSON line on the audit logger, as gateway.security writes its auth events."""
    audit_log.info(json.dumps({**event, "kind": "audit"}, separators=(",", ":")))


def loki_error_response(failure: ApiError | ServiceError) -> JSONResponse:
    """The gateway's envelope, plus `message` (what Grafana's Loki data source displays) and
    Loki's `status`."""
    exc = as_api_error(failure)
    text = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
    body = {**envelope(exc.code, exc.message, exc.hint), "status": "error", "message": text}
    return JSONResponse(body, status_code=exc.status, headers=response_headers(exc))


class LokiRoute(APIRoute):
    """Renders errors raised anywhere in the request (authentication included) Loki-readably."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Failure as exc:
                return loki_error_response(exc)
            except RequestValidationError as exc:
                problems = "; ".join(str(err.get("msg", "invalid")) for err in exc.errors())
                return loki_error_response(ApiError(400, "invalid_request", problems, "check the parameters"))

        return handle


def loki_params(names: str) -> dict[str, Any]:
    """OpenAPI entries for Loki's query parameters, which the routes read themselves (Loki's
    rules: the first value counts, match and match[] are one, unknown ones are ignored)."""
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in names.split()
        ]
    }


router = APIRouter(prefix=PREFIX, tags=["loki-compatible"], route_class=LokiRoute)
LokiReader = Annotated[Principal, Depends(require_scope(READ_SCOPE))]


async def loki_read(
    request: Request, principal: LokiReader, settings: SettingsDep, loki: LokiDep
) -> LokiRead:
    return LokiRead(request.query_params, principal, settings, LokiPassthrough(loki, settings), loki)


CallDep = Annotated[LokiRead, Depends(loki_read)]


def _flags(request: Request) -> str | None:
    return encoding_flags(request.headers.get("x-loki-response-encoding-flags"))


@router.get(
    "/query_range",
    openapi_extra=loki_params("query start end since limit direction step interval"),
    summary="LogQL range query (Loki's format)",
)
async def query_range(call: CallDep, request: Request) -> FastJSONResponse:
    window = call.window()
    query = await call.scoped_log_query(window.start_ns, window.end_ns)
    params = [
        ("query", query),
        *window_params(window),
        *call.query_options(),
        *call.optional("step", step_duration),
        *call.optional("interval", lambda v: loki_duration("interval", v)),
    ]
    answer = await call.get_data("query_range", params, redact_query_data, flags=_flags(request))
    return FastJSONResponse(answer)


@router.get(
    "/query",
    openapi_extra=loki_params("query time limit direction"),
    summary="LogQL instant query (Loki's format)",
)
async def instant_query(call: CallDep, request: Request) -> FastJSONResponse:
    text = call.param("time")
    at_ns = loki_time_ns("time", text, time.time_ns()) if text else time.time_ns()
    query = await call.scoped_log_query(at_ns, at_ns)
    params = [("query", query), ("time", str(at_ns)), *call.query_options()]
    return FastJSONResponse(await call.get_data("query", params, redact_query_data, flags=_flags(request)))


@router.get(
    "/labels",
    openapi_extra=loki_params("query start end since"),
    summary="Label names (within the key's label policy)",
)
@router.get("/label", include_in_schema=False)  # Loki's older spelling, same handler there
async def labels(call: CallDep) -> FastJSONResponse:
    params = [*window_params(call.window()), *call.selector_params()]
    return FastJSONResponse(await call.get_data("labels", params, None))


@router.get(
    "/label/{name}/values",
    openapi_extra=loki_params("query start end since"),
    summary="Values of one label (within the key's label policy)",
)
async def label_values(name: str, call: CallDep) -> FastJSONResponse:
    check_label_name(name)
    params = [*window_params(call.window()), *call.selector_params()]
    return FastJSONResponse(
        await call.get_data(f"label/{name}/values", params, lambda d: redact_values(name, d))
    )


@router.get(
    "/series",
    openapi_extra=loki_params("match[] match start end since"),
    summary="Streams (label sets) matching selectors, within the key's label policy",
)
async def series(call: CallDep) -> FastJSONResponse:
    return FastJSONResponse(await call.get_data("series", call.series_params(), redact_label_sets))


@router.get(
    "/index/stats",
    openapi_extra=loki_params("query start end since"),
    summary="Index statistics of a selector, within the key's label policy",
)
async def index_stats(call: CallDep) -> FastJSONResponse:
    params = [*window_params(call.window()), ("query", call.scoped_selector(call.query()) or "")]
    return FastJSONResponse(await call.get_object("index/stats", params))


@router.get(
    "/index/volume",
    openapi_extra=loki_params("query start end since limit targetLabels aggregateBy"),
    summary="Log volume by label, within the key's label policy",
)
async def index_volume(call: CallDep) -> FastJSONResponse:
    return FastJSONResponse(await call.get_data("index/volume", call.volume_params(), redact_query_data))


@router.get(
    "/index/volume_range",
    openapi_extra=loki_params("query start end since limit targetLabels aggregateBy step"),
    summary="Log volume over time, within the key's label policy",
)
async def index_volume_range(call: CallDep) -> FastJSONResponse:
    params = [*call.volume_params(), *call.optional("step", step_duration)]
    return FastJSONResponse(await call.get_data("index/volume_range", params, redact_query_data))


@router.get(
    "/patterns",
    openapi_extra=loki_params("query start end since step"),
    summary="Detected line patterns of a query, within the key's label policy",
)
async def patterns(call: CallDep) -> FastJSONResponse:
    window = call.window()
    query = await call.scoped_log_query(window.start_ns, window.end_ns)
    params = [("query", query), *window_params(window), *call.optional("step", step_duration)]
    return FastJSONResponse(await call.get_data("patterns", params, redact_patterns))


@router.get(
    "/detected_fields",
    openapi_extra=loki_params("query start end since step limit line_limit field_limit"),
    summary="Fields detected in the lines of a query",
)
async def detected_fields(call: CallDep) -> FastJSONResponse:
    window = call.window()
    query = await call.scoped_log_query(window.start_ns, window.end_ns)
    # field names, types and counts: no line content
    return FastJSONResponse(await call.get_object("detected_fields", call.detected_params(query, window)))


@router.get(
    "/detected_field/{name}/values",
    openapi_extra=loki_params("query start end since step limit line_limit field_limit"),
    summary="Values of one detected field",
)
async def detected_field_values(name: str, call: CallDep) -> FastJSONResponse:
    return FastJSONResponse(await call.detected_field_values(name))


@router.get(
    "/detected_labels",
    openapi_extra=loki_params("query start end since"),
    summary="Labels of the streams of a selector, with cardinality",
)
async def detected_labels(call: CallDep) -> FastJSONResponse:
    params = [*window_params(call.window()), *call.selector_params()]
    return FastJSONResponse(await call.get_object("detected_labels", params))  # label names and counts only


@router.get("/status/buildinfo", summary="Loki's version (Grafana reads it to pick features)")
async def buildinfo(call: CallDep) -> FastJSONResponse:
    return FastJSONResponse(await call.get("status/buildinfo", []))


@router.get("/drilldown-limits", summary="Limits Grafana's Logs Drilldown adapts to (the key's tenant)")
async def drilldown_limits(call: CallDep) -> FastJSONResponse:
    # limits only; a single-tenant Loki (auth disabled) still wants a tenant here, and calls it "fake"
    tenant = call.principal.tenant or call.settings.loki_tenant_id or SINGLE_TENANT_ID
    return FastJSONResponse(await call.upstream.get(f"{PREFIX}/drilldown-limits", [], tenant))


@router.get(
    "/format_query", openapi_extra=loki_params("query"), summary="LogQL pretty-printed (reads no logs)"
)
async def format_query(call: CallDep) -> FastJSONResponse:
    return FastJSONResponse(await call.get_data("format_query", [("query", call.query() or "")], None))


# ---------------------------------------------------------------------------------------------
# tail (WebSocket)


async def _deny(websocket: WebSocket, exc: ApiError | ServiceError) -> None:
    """Refuse the handshake with our HTTP error (logcli prints it); a close where the server
    cannot send HTTP answers to a WebSocket."""
    try:
        await websocket.send_denial_response(loki_error_response(exc))
    except RuntimeError:
        await websocket.close(code=1008, reason=exc.message[:120])


@dataclass(frozen=True)
class _TailSession:
    """A tail the key may open: one of its session slots is claimed until `release`."""

    gateway: Gateway
    principal: Principal
    params: dict[str, str]

    def release(self) -> None:
        self.gateway.loki_tail_sessions.release(self.principal.key_id)


async def _claim_tail(websocket: WebSocket, client: str) -> _TailSession:
    """The caller authenticated, its tail parameters checked and a session slot of its key claimed."""
    gateway = running(websocket.app)
    if gateway is None:
        raise ApiError(503, "loki_unavailable", "the Loki client is not set up", "start the app's lifespan")
    principal = await gateway.authenticator.authenticate(
        websocket.headers, READ_SCOPE, client=client, method="GET", path=f"{PREFIX}/tail"
    )
    params = tail_params(websocket.query_params, principal, gateway.settings)
    gateway.loki_tail_sessions.claim(principal.key_id, TAIL_MAX_SESSIONS_PER_KEY)
    return _TailSession(gateway, principal, params)


async def _close_tail(websocket: WebSocket, reason: str) -> None:
    """Close the client's socket, if still open, saying why the tail ended."""
    if websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            code = WS_INTERNAL_ERROR if reason.startswith("error") else WS_NORMAL_CLOSURE
            await websocket.close(code=code, reason=f"gateway: {reason}"[:WS_MAX_REASON_BYTES])


@router.websocket("/tail")
async def tail(websocket: WebSocket) -> None:
    """Loki's live tail, with the key's policy injected, redacted, bounded in time and lines."""
    client = websocket.client.host if websocket.client else "-"
    try:
        session = await _claim_tail(websocket, client)
    except Failure as exc:
        await _deny(websocket, exc)
        return
    gateway, principal = session.gateway, session.principal
    started = time.monotonic()
    try:
        passthrough = LokiPassthrough(gateway.loki, gateway.settings)
        upstream = await passthrough.open_tail(session.params, principal.tenant)
    except Failure as exc:
        session.release()
        await _deny(websocket, exc)
        return
    try:
        async with upstream:
            await websocket.accept()
            reason, lines = await relay(
                websocket,
                upstream,
                max_lines=TAIL_MAX_LINES,
                max_seconds=TAIL_MAX_SECONDS,
                redacting=gateway.settings.redact_log_lines,
            )
    finally:
        session.release()
    await _close_tail(websocket, reason)
    seconds = round(time.monotonic() - started, 3)
    _audit({"event": "loki_tail", "key": principal.name, "client": client, "lines": lines, "seconds": seconds,
            "ended": reason})


# ---------------------------------------------------------------------------------------------
# everything else under /loki/api/v1 (keep last)


@router.api_route("/{path:path}", methods=HTTP_METHODS, include_in_schema=False)
async def not_offered(path: str, request: Request, principal: LokiReader) -> Response:
    first = path.strip("/").split("/", 1)[0]
    if first in REFUSED_PATHS:
        _audit({"event": "loki_refused", "key": principal.name, "method": request.method, "endpoint": first})
        raise ApiError(
            403,
            "loki_endpoint_refused",
            f"{request.method} {PREFIX}/{path} is not offered: the gateway serves Loki's read API only",
            "logs are written by the shipper; deletes and administration go to Loki directly",
        )
    if first == "tail":
        raise ApiError(
            400, "websocket_required", "tail is a WebSocket endpoint", "connect with ws:// (logcli --tail)"
        )
    if request.method != "GET" and any(
        r.path == f"{PREFIX}/{path}" for r in router.routes if isinstance(r, APIRoute)
    ):
        raise ApiError(
            405, "method_not_allowed", f"{PREFIX}/{path} takes GET", "send the parameters in the URL"
        )
    raise ApiError(404, "not_found", f"{PREFIX}/{path} is not part of Loki's read API here", "see GET /docs")
