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
from gateway.api.routes.logs import FastJSONResponse, check_bytes, prepare_for
from gateway.config import GatewaySettings
from gateway.container import running
from gateway.errors import DEFAULT_RETRY_AFTER_SECONDS, ApiError, Failure, as_api_error, envelope
from gateway.services.errors import ServiceError
from gateway.services.logql import (
    Matcher,
    check_label_name,
    inject_policy,
    parse_policy,
    reach_back_ns,
    scan_query,
)
from gateway.services.loki import LokiClient, LokiUpstreamError
from gateway.services.loki_compat import (
    MalformedAnswer,
    Window,
    loki_direction,
    loki_duration,
    loki_limit,
    loki_time_ns,
    loki_window,
    redact_label_sets,
    redact_patterns,
    redact_query_data,
    redact_values,
)
from gateway.services.loki_passthrough import LokiPassthrough, encoding_flags
from gateway.services.loki_tail import relay

PREFIX = "/loki/api/v1"
READ_SCOPE = "logs:read"
MAX_QUERY_CHARS = 8192
MAX_MATCHERS = 32  # match[] parameters of one series request
TAIL_MAX_SECONDS = 300.0  # one tail session; a client opens a new one to go on
TAIL_MAX_LINES = 10_000  # lines relayed by one tail session
TAIL_MAX_DELAY_FOR = 5  # Loki's own maximum of delay_for, in seconds
TAIL_MAX_SESSIONS_PER_KEY = 3  # per replica; Loki allows 10 tails per tenant by default
TAIL_RETRY_AFTER_SECONDS = 10
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
    headers = dict(exc.headers)
    if exc.status == 503 and not any(name.lower() == "retry-after" for name in headers):
        headers["Retry-After"] = str(DEFAULT_RETRY_AFTER_SECONDS)  # as the app's own handler
    return JSONResponse(body, status_code=exc.status, headers=headers)


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


async def get_passthrough(loki: LokiDep, settings: SettingsDep) -> LokiPassthrough:
    return LokiPassthrough(loki, settings)


PassthroughDep = Annotated[LokiPassthrough, Depends(get_passthrough)]


@dataclass(frozen=True)
class LokiCall:
    """One request of a Loki client: who calls, its parameters, and where to send it."""

    request: Request
    principal: Principal
    settings: GatewaySettings
    upstream: LokiPassthrough
    loki: LokiClient

    def param(self, name: str) -> str | None:
        """The first value, as Loki (Go's Form.Get) reads it; only values we checked go on."""
        values = self.request.query_params.getlist(name)
        return values[0] if values else None

    def required(self, name: str) -> str:
        value = self.param(name)
        if value is None or not value.strip():
            raise ApiError(400, "missing_parameter", f"the {name} parameter is required", f"add {name}=...")
        return value

    def query(self, *, required: bool = True) -> str | None:
        query = self.required("query") if required else self.param("query")
        if query is not None and len(query) > MAX_QUERY_CHARS:
            raise ApiError(
                413,
                "query_too_long",
                f"the query has {len(query)} characters",
                f"keep it under {MAX_QUERY_CHARS}",
            )
        return query or None

    def window(self) -> Window:
        return loki_window(
            start=self.param("start"),
            end=self.param("end"),
            since=self.param("since"),
            now_ns=time.time_ns(),
            max_hours=self.settings.query_max_range_hours,
        )

    def policy(self) -> tuple[Matcher, ...]:
        """The key's policy matchers (none for a full-access key); 403 when it does not parse."""
        if not self.principal.label_policy:
            return ()
        try:
            return parse_policy(self.principal.label_policy)
        except (ValueError, *Failure) as exc:
            raise ApiError(
                403,
                "invalid_label_policy",
                "this key's label policy is not a valid selector",
                "ask an administrator to fix the key's label_policy",
            ) from exc

    def scoped_selector(self, query: str | None) -> str | None:
        """For the index endpoints (labels, series, stats, volume): the client's selector with the
        policy injected, the policy alone when there is none. The 'matches every stream'
        guardrail is for reading lines: {service_name=~".+"} is how Logs Drilldown lists services."""
        policy = self.policy()
        if query is None:
            return self.principal.label_policy
        scanned = scan_query(query)
        return inject_policy(scanned, policy).text if policy else scanned.text

    def redacting(self) -> bool:
        return self.settings.redact_log_lines

    async def get(self, path: str, params: list[tuple[str, str]], *, flags: str | None = None) -> Any:
        return await self.upstream.get(path, params, self.principal.tenant, flags=flags)

    async def get_data(
        self, path: str, params: list[tuple[str, str]], redact: Callable[[Any], Any] | None, **kw: Any
    ) -> FastJSONResponse:
        """Loki's {"status": "success", "data": ...} answer, `data` redacted."""
        body = await self.get(path, params, **kw)
        if not isinstance(body, dict) or body.get("status") != "success":
            raise LokiUpstreamError(f"Loki's {path} answer is not a success")
        # Loki leaves `data` out of an empty label listing ({"status": "success"})
        if redact is not None and self.redacting() and "data" in body:
            try:
                body = {**body, "data": redact(body["data"])}
            except MalformedAnswer as exc:
                raise LokiUpstreamError(f"Loki's {path} answer is malformed: {exc}") from exc
        return FastJSONResponse(body)


async def loki_call(
    request: Request, principal: LokiReader, settings: SettingsDep, upstream: PassthroughDep, loki: LokiDep
) -> LokiCall:
    return LokiCall(request, principal, settings, upstream, loki)


CallDep = Annotated[LokiCall, Depends(loki_call)]


def _window_params(window: Window) -> list[tuple[str, str]]:
    return [("start", str(window.start_ns)), ("end", str(window.end_ns))]


def _optional(call: LokiCall, name: str, check: Callable[[str], Any] = str) -> list[tuple[str, str]]:
    value = call.param(name)
    if value is None:
        return []
    checked = check(value)
    return [] if checked is None else [(name, str(checked))]


async def _scoped_log_query(call: LokiCall, query: str, start_ns: int, end_ns: int) -> str:
    """A query that reads lines, through the LogQL proxy's preparation (policy and guardrails) and
    the byte guardrail. A query without any `{` reads no logs (Grafana's `vector(1)+vector(1)`
    health check): it goes on as it is."""
    if "{" not in query:
        return query
    scanned = prepare_for(call.principal, query, call.settings)
    reach = reach_back_ns(scanned)
    await check_bytes(
        call.loki, scanned, start_ns - reach, end_ns, call.principal.tenant, call.settings.query_max_bytes
    )
    return scanned.text


def _query_options(call: LokiCall) -> list[tuple[str, str]]:
    limit = call.param("limit")
    return [
        *_optional(call, "direction", loki_direction),
        *([("limit", str(loki_limit(limit, call.settings.query_max_limit)))] if limit is not None else []),
    ]


@router.get(
    "/query_range",
    openapi_extra=loki_params("query start end since limit direction step interval"),
    summary="LogQL range query (Loki's format)",
)
async def query_range(call: CallDep) -> FastJSONResponse:
    window = call.window()
    query = await _scoped_log_query(call, call.query() or "", window.start_ns, window.end_ns)
    params = [
        ("query", query),
        *_window_params(window),
        *_query_options(call),
        *_optional(call, "step", lambda v: loki_duration("step", v)),
        *_optional(call, "interval", lambda v: loki_duration("interval", v)),
    ]
    flags = encoding_flags(call.request.headers.get("x-loki-response-encoding-flags"))
    return await call.get_data(f"{PREFIX}/query_range", params, redact_query_data, flags=flags)


@router.get(
    "/query",
    openapi_extra=loki_params("query time limit direction"),
    summary="LogQL instant query (Loki's format)",
)
async def instant_query(call: CallDep) -> FastJSONResponse:
    text = call.param("time")
    at_ns = loki_time_ns("time", text, time.time_ns()) if text else time.time_ns()
    query = await _scoped_log_query(call, call.query() or "", at_ns, at_ns)
    params = [("query", query), ("time", str(at_ns)), *_query_options(call)]
    flags = encoding_flags(call.request.headers.get("x-loki-response-encoding-flags"))
    return await call.get_data(f"{PREFIX}/query", params, redact_query_data, flags=flags)


def _selector_params(call: LokiCall, name: str = "query") -> list[tuple[str, str]]:
    selector = call.scoped_selector(call.query(required=False))
    return [(name, selector)] if selector else []


@router.get(
    "/labels",
    openapi_extra=loki_params("query start end since"),
    summary="Label names (within the key's label policy)",
)
@router.get("/label", include_in_schema=False)  # Loki's older spelling, same handler there
async def labels(call: CallDep) -> FastJSONResponse:
    params = [*_window_params(call.window()), *_selector_params(call)]
    return await call.get_data(f"{PREFIX}/labels", params, None)


@router.get(
    "/label/{name}/values",
    openapi_extra=loki_params("query start end since"),
    summary="Values of one label (within the key's label policy)",
)
async def label_values(name: str, call: CallDep) -> FastJSONResponse:
    check_label_name(name)
    params = [*_window_params(call.window()), *_selector_params(call)]
    return await call.get_data(f"{PREFIX}/label/{name}/values", params, lambda d: redact_values(name, d))


@router.get(
    "/series",
    openapi_extra=loki_params("match[] match start end since"),
    summary="Streams (label sets) matching selectors, within the key's label policy",
)
async def series(call: CallDep) -> FastJSONResponse:
    given = [*call.request.query_params.getlist("match[]"), *call.request.query_params.getlist("match")]
    if len(given) > MAX_MATCHERS:
        raise ApiError(
            400, "too_many_matchers", f"{len(given)} match[] parameters", f"give at most {MAX_MATCHERS}"
        )
    selectors = [s for s in (call.scoped_selector(m) for m in given) if s]
    if not given and call.principal.label_policy:
        selectors = [call.principal.label_policy]
    params = [*_window_params(call.window()), *(("match[]", s) for s in selectors)]
    return await call.get_data(f"{PREFIX}/series", params, redact_label_sets)


@router.get(
    "/index/stats",
    openapi_extra=loki_params("query start end since"),
    summary="Index statistics of a selector, within the key's label policy",
)
async def index_stats(call: CallDep) -> FastJSONResponse:
    params = [*_window_params(call.window()), ("query", call.scoped_selector(call.query()) or "")]
    body = await call.get(f"{PREFIX}/index/stats", params)
    if not isinstance(body, dict):
        raise LokiUpstreamError("Loki's index/stats answer is not an object")
    return FastJSONResponse(body)


def _volume_params(call: LokiCall) -> list[tuple[str, str]]:
    return [
        *_window_params(call.window()),
        ("query", call.scoped_selector(call.query()) or ""),
        *_optional(call, "limit", lambda v: loki_limit(v, call.settings.query_max_limit)),
        *_optional(
            call, "targetLabels", lambda v: ",".join(check_label_name(n.strip()) for n in v.split(","))
        ),
        *_optional(call, "aggregateBy", lambda v: v if v in ("series", "labels") else _bad("aggregateBy", v)),
    ]


def _bad(name: str, value: str) -> None:
    raise ApiError(400, "invalid_parameter", f"invalid {name} {value[:64]!r}", "see Loki's API documentation")


@router.get(
    "/index/volume",
    openapi_extra=loki_params("query start end since limit targetLabels aggregateBy"),
    summary="Log volume by label, within the key's label policy",
)
async def index_volume(call: CallDep) -> FastJSONResponse:
    return await call.get_data(f"{PREFIX}/index/volume", _volume_params(call), redact_query_data)


@router.get(
    "/index/volume_range",
    openapi_extra=loki_params("query start end since limit targetLabels aggregateBy step"),
    summary="Log volume over time, within the key's label policy",
)
async def index_volume_range(call: CallDep) -> FastJSONResponse:
    params = [*_volume_params(call), *_optional(call, "step", lambda v: loki_duration("step", v))]
    return await call.get_data(f"{PREFIX}/index/volume_range", params, redact_query_data)


@router.get(
    "/patterns",
    openapi_extra=loki_params("query start end since step"),
    summary="Detected line patterns of a query, within the key's label policy",
)
async def patterns(call: CallDep) -> FastJSONResponse:
    window = call.window()
    query = await _scoped_log_query(call, call.query() or "", window.start_ns, window.end_ns)
    params = [
        ("query", query),
        *_window_params(window),
        *_optional(call, "step", lambda v: loki_duration("step", v)),
    ]
    return await call.get_data(f"{PREFIX}/patterns", params, redact_patterns)


def _detected_params(call: LokiCall, query: str, window: Window) -> list[tuple[str, str]]:
    maximum = call.settings.query_max_limit
    return [
        ("query", query),
        *_window_params(window),
        *_optional(call, "step", lambda v: loki_duration("step", v)),
        *(
            p
            for n in ("limit", "line_limit", "field_limit")
            for p in _optional(call, n, lambda v: loki_limit(v, maximum))
        ),
    ]


@router.get(
    "/detected_fields",
    openapi_extra=loki_params("query start end since step limit line_limit field_limit"),
    summary="Fields detected in the lines of a query",
)
async def detected_fields(call: CallDep) -> FastJSONResponse:
    window = call.window()
    query = await _scoped_log_query(call, call.query() or "", window.start_ns, window.end_ns)
    body = await call.get(f"{PREFIX}/detected_fields", _detected_params(call, query, window))
    if not isinstance(body, dict):
        raise LokiUpstreamError("Loki's detected_fields answer is not an object")
    return FastJSONResponse(body)  # field names, types and counts: no line content


@router.get(
    "/detected_field/{name}/values",
    openapi_extra=loki_params("query start end since step limit line_limit field_limit"),
    summary="Values of one detected field",
)
async def detected_field_values(name: str, call: CallDep) -> FastJSONResponse:
    check_label_name(name)
    window = call.window()
    query = await _scoped_log_query(call, call.query() or "", window.start_ns, window.end_ns)
    body = await call.get(f"{PREFIX}/detected_field/{name}/values", _detected_params(call, query, window))
    if not isinstance(body, dict):
        raise LokiUpstreamError("Loki's detected_field values answer is not an object")
    if call.redacting():
        try:
            body = {**body, "values": redact_values(name, body.get("values") or [])}
        except MalformedAnswer as exc:
            raise LokiUpstreamError(f"Loki's detected_field values answer is malformed: {exc}") from exc
    return FastJSONResponse(body)


@router.get(
    "/detected_labels",
    openapi_extra=loki_params("query start end since"),
    summary="Labels of the streams of a selector, with cardinality",
)
async def detected_labels(call: CallDep) -> FastJSONResponse:
    params = [*_window_params(call.window()), *_selector_params(call)]
    body = await call.get(f"{PREFIX}/detected_labels", params)
    if not isinstance(body, dict):
        raise LokiUpstreamError("Loki's detected_labels answer is not an object")
    return FastJSONResponse(body)  # label names and counts only


@router.get("/status/buildinfo", summary="Loki's version (Grafana reads it to pick features)")
async def buildinfo(call: CallDep) -> FastJSONResponse:
    return FastJSONResponse(await call.get(f"{PREFIX}/status/buildinfo", []))


@router.get("/drilldown-limits", summary="Limits Grafana's Logs Drilldown adapts to (the key's tenant)")
async def drilldown_limits(call: CallDep) -> FastJSONResponse:
    # limits only; a single-tenant Loki (auth disabled) still wants a tenant here, and calls it "fake"
    tenant = call.principal.tenant or call.settings.loki_tenant_id or SINGLE_TENANT_ID
    return FastJSONResponse(await call.upstream.get(f"{PREFIX}/drilldown-limits", [], tenant))


@router.get(
    "/format_query", openapi_extra=loki_params("query"), summary="LogQL pretty-printed (reads no logs)"
)
async def format_query(call: CallDep) -> FastJSONResponse:
    return await call.get_data(f"{PREFIX}/format_query", [("query", call.query() or "")], None)


# ---------------------------------------------------------------------------------------------
# tail (WebSocket)


@dataclass(frozen=True)
class TailPlan:
    params: dict[str, str]
    max_lines: int


def tail_plan(query_params: Any, principal: Principal, settings: GatewaySettings) -> TailPlan:
    """Loki's tail parameters, checked: the query prepared like any other, delay_for within Loki's
    maximum, start within the gateway's range limit, limit within its maximum."""

    def first(name: str) -> str | None:  # as Loki reads a repeated parameter
        values = query_params.getlist(name)
        return values[0] if values else None

    query = first("query")
    if not query or not query.strip():
        raise ApiError(400, "missing_parameter", "the query parameter is required", "add query=...")
    if len(query) > MAX_QUERY_CHARS:
        raise ApiError(413, "query_too_long", "the query is too long", f"keep it under {MAX_QUERY_CHARS}")
    scanned = prepare_for(principal, query, settings)
    now_ns = time.time_ns()
    params = {"query": scanned.text}
    start = first("start")
    if start:
        window = loki_window(
            start=start, end=None, since=None, now_ns=now_ns, max_hours=settings.query_max_range_hours
        )
        params["start"] = str(window.start_ns)
    limit = loki_limit(first("limit"), settings.query_max_limit)
    if limit is not None:
        params["limit"] = str(limit)
    delay = first("delay_for")
    if delay is not None:
        if not (delay.isascii() and delay.isdigit() and int(delay) <= TAIL_MAX_DELAY_FOR):
            raise ApiError(400, "invalid_parameter", "delay_for must be 0 to 5 seconds", "e.g. delay_for=2")
        params["delay_for"] = delay
    return TailPlan(params, TAIL_MAX_LINES)


async def _deny(websocket: WebSocket, exc: ApiError | ServiceError) -> None:
    """Refuse the handshake with our HTTP error (logcli prints it); a close where the server
    cannot send HTTP answers to a WebSocket."""
    try:
        await websocket.send_denial_response(loki_error_response(exc))
    except RuntimeError:
        await websocket.close(code=1008, reason=exc.message[:120])


@router.websocket("/tail")
async def tail(websocket: WebSocket) -> None:
    """Loki's live tail, with the key's policy injected, redacted, bounded in time and lines."""
    client = websocket.client.host if websocket.client else "-"
    try:
        gateway = running(websocket.app)
        if gateway is None:
            raise ApiError(
                503, "loki_unavailable", "the Loki client is not set up", "start the app's lifespan"
            )
        settings, loki, sessions = gateway.settings, gateway.loki, gateway.loki_tail_sessions
        principal = await gateway.authenticator.authenticate(
            websocket.headers, READ_SCOPE, client=client, method="GET", path=f"{PREFIX}/tail"
        )
        plan = tail_plan(websocket.query_params, principal, settings)
        sessions.claim(principal.key_id, TAIL_MAX_SESSIONS_PER_KEY)
    except Failure as exc:
        await _deny(websocket, exc)
        return
    started = time.monotonic()
    try:
        upstream = await LokiPassthrough(loki, settings).open_tail(plan.params, principal.tenant)
    except Failure as exc:
        sessions.release(principal.key_id)
        await _deny(websocket, exc)
        return
    try:
        async with upstream:
            await websocket.accept()
            reason, lines = await relay(
                websocket,
                upstream,
                max_lines=plan.max_lines,
                max_seconds=TAIL_MAX_SECONDS,
                redacting=settings.redact_log_lines,
            )
    finally:
        sessions.release(principal.key_id)
    if websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            code = WS_INTERNAL_ERROR if reason.startswith("error") else WS_NORMAL_CLOSURE
            await websocket.close(code=code, reason=f"gateway: {reason}"[:WS_MAX_REASON_BYTES])
    seconds = round(time.monotonic() - started, 3)
    _audit(
        {
            "event": "loki_tail",
            "key": principal.name,
            "client": client,
            "lines": lines,
            "seconds": seconds,
            "ended": reason,
        }
    )


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
