"""The MCP endpoint: the official SDK's low-level server behind the gateway's own authentication.

Every HTTP request to /mcp is authenticated like a REST request (same keys, rate limit and audit)
before the SDK sees it; the caller travels to the tool handlers in the ASGI scope. The session
manager is stateless and answers with JSON, so any replica can answer any request and no sticky
sessions are needed. `tools/list` shows a key the tools its scopes allow; a tool call checks the
tool's scope (audited), and every failure is a tool error carrying the ApiError envelope."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.config import GatewaySettings
from gateway.container import app_config, running
from gateway.errors import ApiError, Failure, as_api_error, envelope
from gateway.mcp.tools import TOOLS, TOOLS_BY_NAME, ToolCall
from gateway.security import Principal

MCP_PATH = "/mcp"
PRINCIPAL_SCOPE_KEY = "gateway.principal"  # where the endpoint leaves the caller for the handlers
ANY_HOST = "*"
SERVER_NAME = "loki-gateway"
INSTRUCTIONS = (
    "Read-only access to logs in Loki (GCS, Firestore and pod logs) within this key's label policy, "
    "log summaries, service health and alerts. Log answers fit a byte budget: when `truncated` is "
    "true, pass `next_cursor` back as `cursor` for the rest. Times accept RFC 3339, 30m/2h/7d and now."
)

log = logging.getLogger(__name__)


def _caller(ctx: Any) -> tuple[ToolCall, str]:
    request: Request | None = getattr(ctx, "request", None)
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY) if request is not None else None
    if request is None or not isinstance(principal, Principal):  # never: the endpoint sets it
        raise ApiError(401, "missing_api_key", "the request was not authenticated", "send an API key")
    gateway = running(request.scope["app"])
    if gateway is None:  # the app's lifespan ended while this call waited
        raise ApiError(503, "mcp_unavailable", "the MCP endpoint is not running", "retry shortly")
    client = request.client.host if request.client else "-"
    return ToolCall(gateway, request, principal), client


def tool_error(exc: ApiError) -> CallToolResult:
    body = envelope(exc.code, exc.message, exc.hint)
    return CallToolResult(
        content=[TextContent(text=orjson.dumps(body).decode())], structured_content=body, is_error=True
    )


def _invalid_arguments(exc: ValidationError) -> ApiError:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or 'arguments'}: {err['msg']}"
        for err in exc.errors()[:5]
    )
    return ApiError(
        422, "invalid_arguments", problems, "check the argument names, types and ranges in tools/list"
    )


async def list_tools(ctx: Any, _: PaginatedRequestParams | None) -> ListToolsResult:
    call, _client = _caller(ctx)
    return ListToolsResult(tools=[spec.tool() for spec in TOOLS if call.principal.allows(spec.scope)])


async def call_tool(ctx: Any, params: CallToolRequestParams) -> CallToolResult:
    try:
        call, client = _caller(ctx)
        spec = TOOLS_BY_NAME.get(params.name)
        if spec is None:
            raise ApiError(
                404,
                "unknown_tool",
                f"no tool named {params.name!r}",
                "tools/list shows the tools of your key",
            )
        path = f"{MCP_PATH}/tools/{spec.name}"
        call.gateway.authenticator.authorize(call.principal, spec.scope, client, "MCP", path)
        try:
            args = spec.args.model_validate(params.arguments or {})
        except ValidationError as exc:
            raise _invalid_arguments(exc) from exc
        result = await spec.handler(call, args)
    except Failure as exc:
        return tool_error(as_api_error(exc))
    except Exception:  # a foreseeable failure is an ApiError or ServiceError; anything else is ours, logged
        log.exception("MCP tool %s failed", params.name)
        return tool_error(
            ApiError(500, "internal_error", "unexpected error", "retry; if it persists, check gateway logs")
        )
    return CallToolResult(
        content=[TextContent(text=orjson.dumps(result).decode())], structured_content=result
    )


def _input_schema(name: str) -> dict[str, Any] | None:
    spec = TOOLS_BY_NAME.get(name)
    return spec.args.model_json_schema() if spec else None


def build_server() -> Server[Any]:
    return Server(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        get_tool_input_schema=_input_schema,
    )


def transport_security(settings: GatewaySettings) -> TransportSecuritySettings:
    if ANY_HOST in settings.mcp_allowed_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    origins = [f"{scheme}://{host}" for host in settings.mcp_allowed_hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(settings.mcp_allowed_hosts),
        allowed_origins=origins,
    )


class McpEndpoint:
    """ASGI endpoint at /mcp: authenticate, then hand the request to the session manager."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app: FastAPI = scope["app"]
        gateway = running(app)
        request = Request(scope, receive)
        try:
            if not app_config(app).settings.mcp_enabled:
                raise ApiError(404, "not_found", "the MCP endpoint is switched off", "set MCP_ENABLED=true")
            if gateway is None or gateway.mcp is None:
                raise ApiError(503, "mcp_unavailable", "the MCP endpoint is not running", "retry shortly")
            principal = await gateway.authenticator.identify(
                request.headers, request.client.host if request.client else "-", request.method, MCP_PATH
            )
        except Failure as failure:
            exc = as_api_error(failure)
            response = JSONResponse(
                envelope(exc.code, exc.message, exc.hint), exc.status, headers=exc.headers
            )
            await response(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await gateway.mcp.handle_request(scope, receive, send)


@asynccontextmanager
async def session_manager(settings: GatewaySettings) -> AsyncIterator[StreamableHTTPSessionManager | None]:
    """The running session manager for the app's lifespan; None when MCP is switched off."""
    if not settings.mcp_enabled:
        yield None
        return
    manager = StreamableHTTPSessionManager(
        build_server(), json_response=True, stateless=True, security_settings=transport_security(settings)
    )
    ready = asyncio.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        # the manager's task group is entered and left in this one task: a lifespan may be entered
        # and left in different tasks (pytest fixtures do), which a task group does not allow
        async with manager.run():
            ready.set()
            await stop.wait()

    task = asyncio.create_task(serve(), name="mcp-session-manager")
    started = asyncio.create_task(ready.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        task.result()  # raises what stopped it
    try:
        yield manager
    finally:
        stop.set()
        await task


router = APIRouter()  # its session manager runs in the app's lifespan (gateway.wiring)
router.routes.append(
    Route(MCP_PATH, endpoint=McpEndpoint(), methods=["GET", "POST", "DELETE"], include_in_schema=False)
)
