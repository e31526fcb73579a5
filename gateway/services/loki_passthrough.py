"""Loki's read API passed through for Loki's own clients (Grafana's Loki data source, logcli): one
GET on the app's shared httpx client whose answer comes back as Loki's JSON, and the tail
WebSocket opened to Loki. The caller chooses every parameter and the tenant; the client's own
headers never reach Loki (only the encoding flag below, which changes the answer's shape, not
what it holds). Failures become the same LokiError types as gateway.services.loki raises."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from gateway.config import GatewaySettings
from gateway.metrics import UPSTREAM_ERRORS
from gateway.services.loki import (
    TENANT_HEADER,
    LokiBadRequest,
    LokiBusy,
    LokiClient,
    LokiTimeout,
    LokiUnavailable,
    LokiUpstreamError,
)

UPSTREAM = "loki"
ENCODING_FLAGS_HEADER = "X-Loki-Response-Encoding-Flags"
KNOWN_ENCODING_FLAGS = frozenset({"categorize-labels"})
MAX_ERROR_CHARS = 500
TAIL_PATH = "/loki/api/v1/tail"
TAIL_MAX_FRAME_BYTES = 16 * 1024 * 1024

Params = Sequence[tuple[str, str]]


def encoding_flags(value: str | None) -> str | None:
    """The client's X-Loki-Response-Encoding-Flags reduced to the flags we can redact."""
    if not value:
        return None
    flags = [f.strip() for f in value.split(",") if f.strip() in KNOWN_ENCODING_FLAGS]
    return ",".join(flags) or None


def _message(response: httpx.Response) -> str:
    return response.text.strip()[:MAX_ERROR_CHARS] or f"HTTP {response.status_code}"


class LokiPassthrough:
    """GETs on Loki's read API for the Loki-compatible routes; `http` is the app's shared client."""

    def __init__(self, loki: LokiClient, settings: GatewaySettings) -> None:
        self._loki = loki
        self._base = settings.loki_url.rstrip("/")
        self._default_tenant = settings.loki_tenant_id
        self._timeout = settings.loki_timeout_seconds

    def headers(self, tenant: str | None, flags: str | None = None) -> dict[str, str]:
        """Only headers we set: the key's tenant (else the configured one) and a known flag."""
        headers: dict[str, str] = {}
        chosen = tenant or self._default_tenant
        if chosen:
            headers[TENANT_HEADER] = chosen
        if flags:
            headers[ENCODING_FLAGS_HEADER] = flags
        return headers

    async def get(self, path: str, params: Params, tenant: str | None, *, flags: str | None = None) -> Any:
        """Loki's JSON answer to GET `path` (through the Loki client's pool and concurrency gate);
        a LokiError for anything but a 2xx JSON answer."""
        response = await self._loki.send_get(path, list(params), self.headers(tenant, flags))
        if response.status_code >= 400:
            UPSTREAM_ERRORS.labels(UPSTREAM, "status").inc()
            raise translate_status(response.status_code, _message(response))
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            UPSTREAM_ERRORS.labels(UPSTREAM, "invalid_response").inc()
            raise LokiUpstreamError("Loki answered with invalid JSON") from exc

    def tail_url(self, params: Mapping[str, str]) -> str:
        parts = urlsplit(self._base)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path + TAIL_PATH, urlencode(params), ""))

    async def open_tail(self, params: Mapping[str, str], tenant: str | None) -> ClientConnection:
        """Loki's tail WebSocket, opened within the Loki timeout; LokiErrors as for `get`."""
        try:
            return await connect(
                self.tail_url(params),
                additional_headers=self.headers(tenant),
                open_timeout=self._timeout,
                max_size=TAIL_MAX_FRAME_BYTES,
                compression=None,
            )
        except InvalidStatus as exc:
            UPSTREAM_ERRORS.labels(UPSTREAM, "status").inc()
            body = (
                exc.response.body.decode("utf-8", "replace").strip()[:MAX_ERROR_CHARS]
                if exc.response.body
                else ""
            )
            raise translate_status(exc.response.status_code, body or str(exc)) from exc
        except TimeoutError as exc:
            UPSTREAM_ERRORS.labels(UPSTREAM, "timeout").inc()
            raise LokiTimeout(self._timeout) from exc
        except (OSError, InvalidHandshake) as exc:
            UPSTREAM_ERRORS.labels(UPSTREAM, "connect").inc()
            raise LokiUnavailable(type(exc).__name__) from exc


def translate_status(status: int, message: str) -> LokiBadRequest | LokiBusy | LokiUpstreamError:
    if status >= 500:
        return LokiUpstreamError(f"Loki answered {status}: {message}")
    if status == 429:
        return LokiBusy(message)
    return LokiBadRequest(message)
