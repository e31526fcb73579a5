"""Loki's HTTP query API behind one small client. Every failure is translated here, at the
boundary, into a LokiError of a kind (gateway.services.loki.errors), so routes never see httpx
exceptions.

At most LOKI_MAX_CONCURRENT_REQUESTS calls are in flight at once; the app gives this client a pool
of its own with a few connections more than that, so a call never queues inside httpcore's pool
(where a cancelled wait can leak a connection) and the health probes always find a connection."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import orjson

from gateway.config import GatewaySettings
from gateway.metrics import UPSTREAM_ERRORS
from gateway.services.boundary import entry_key, first_boundary
from gateway.services.bounded_http import ConcurrencyGate, GateTimeout, request_within
from gateway.services.loki.answers import sorted_entries
from gateway.services.loki.errors import (
    UPSTREAM,
    LokiBadRequest,
    LokiBusy,
    LokiQueueFull,
    LokiTimeout,
    LokiUnavailable,
    LokiUpstreamError,
    TooManyAtOneTimestamp,
)

QUERY_PATH = "/loki/api/v1/query"
QUERY_RANGE_PATH = "/loki/api/v1/query_range"
LABELS_PATH = "/loki/api/v1/labels"
LABEL_VALUES_PATH = "/loki/api/v1/label/{name}/values"
INDEX_STATS_PATH = "/loki/api/v1/index/stats"
PATTERNS_PATH = "/loki/api/v1/patterns"
VOLUME_PATH = "/loki/api/v1/index/volume"
VOLUME_RANGE_PATH = "/loki/api/v1/index/volume_range"
DETECTED_FIELDS_PATH = "/loki/api/v1/detected_fields"
READY_PATH = "/ready"

TENANT_HEADER = "X-Scope-OrgID"
# Without it Loki merges each entry's structured metadata (and parsed labels) into its stream's
# labels, so every line becomes a "stream" of its own; with it, an entry carries them as a third
# element {"structuredMetadata": {...}, "parsed": {...}} and streams are real label sets.
CATEGORIZE_LABELS_HEADERS = {"X-Loki-Response-Encoding-Flags": "categorize-labels"}
# Headers that choose a tenant or a label policy inside Loki/its proxies: only we may set them.
FORBIDDEN_FORWARD_HEADERS = frozenset({"x-scope-orgid", "x-prom-label-policy"})
MAX_ERROR_MESSAGE_CHARS = 500
DEFAULT_PAGE_SIZE = 1000
READY_TIMEOUT_SECONDS = 2.0


def max_entries_per_query(settings: GatewaySettings) -> int:
    """The most entries the gateway asks Loki for in one query: the largest limit it advertises.
    Loki refuses more than its max_entries_limit_per_query (5000 by default), which must allow it."""
    return max(settings.query_max_limit, settings.logs_max_limit)


def strip_forbidden_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers safe to pass on to Loki: never a client's tenant or label policy."""
    return {k: v for k, v in headers.items() if k.lower() not in FORBIDDEN_FORWARD_HEADERS}


def _error_message(response: httpx.Response) -> str:
    text = response.text.strip()
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            body = response.json()
            text = str(body.get("message") or body.get("error") or text)
        except (ValueError, AttributeError):
            pass
    return text[:MAX_ERROR_MESSAGE_CHARS] or f"HTTP {response.status_code}"


class LokiClient:
    """Async client for Loki's query endpoints; `http` is the app's shared httpx.AsyncClient."""

    def __init__(self, http: httpx.AsyncClient, settings: GatewaySettings) -> None:
        self._http = http
        self._base = settings.loki_url.rstrip("/")
        self._default_tenant = settings.loki_tenant_id
        self._timeout = settings.loki_timeout_seconds
        self._max_entries = max_entries_per_query(settings)
        self._gate = ConcurrencyGate(
            settings.loki_max_concurrent_requests, settings.loki_queue_timeout_seconds
        )
        self.last_answer_at: float | None = None  # time.monotonic() of Loki's latest answer via the pool

    def _headers(self, tenant: str | None) -> dict[str, str]:
        chosen = tenant or self._default_tenant
        return {TENANT_HEADER: chosen} if chosen else {}

    async def send_get(self, path: str, params: Any, headers: Mapping[str, str]) -> httpx.Response:
        """One GET on Loki through this client's pool and concurrency gate, whatever its status
        (the Loki-compatible routes pass answers on); busy, timeout and transport errors raised."""
        try:
            async with self._gate.slot():
                response = await request_within(
                    self._http, "GET", self._base + path, self._timeout, params=params, headers=headers
                )
            self.last_answer_at = time.monotonic()
        except GateTimeout as exc:
            UPSTREAM_ERRORS.labels(UPSTREAM, "busy").inc()
            raise LokiQueueFull(str(exc)) from exc
        except httpx.TimeoutException as exc:
            UPSTREAM_ERRORS.labels(UPSTREAM, "timeout").inc()
            raise LokiTimeout(self._timeout) from exc
        except httpx.TransportError as exc:
            UPSTREAM_ERRORS.labels(UPSTREAM, "connect").inc()
            raise LokiUnavailable(type(exc).__name__) from exc
        return response

    async def _get(
        self,
        path: str,
        params: Mapping[str, Any],
        tenant: str | None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Any:
        clean = {k: str(v) for k, v in params.items() if v is not None}
        response = await self.send_get(path, clean, {**self._headers(tenant), **(extra_headers or {})})
        if response.status_code >= 500:
            UPSTREAM_ERRORS.labels(UPSTREAM, "status").inc()
            raise LokiUpstreamError(f"Loki answered {response.status_code}: {_error_message(response)}")
        if response.status_code == 429:  # Loki's own limits (too many outstanding requests)
            UPSTREAM_ERRORS.labels(UPSTREAM, "status").inc()
            raise LokiBusy(_error_message(response))
        if response.status_code >= 400:
            UPSTREAM_ERRORS.labels(UPSTREAM, "status").inc()
            raise LokiBadRequest(_error_message(response), clean.get("query"))
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            UPSTREAM_ERRORS.labels(UPSTREAM, "invalid_response").inc()
            raise LokiUpstreamError("Loki answered with invalid JSON") from exc

    async def _get_data(
        self,
        path: str,
        params: Mapping[str, Any],
        tenant: str | None,
        *,
        extra_headers: Mapping[str, str] | None = None,
        may_omit_data: bool = False,
    ) -> Any:
        """The `data` of a successful answer. List endpoints (labels, label values) answer a bare
        {"status": "success"} when nothing matches: `may_omit_data` makes that None."""
        body = await self._get(path, params, tenant, extra_headers)
        if not isinstance(body, dict) or body.get("status") != "success":
            UPSTREAM_ERRORS.labels(UPSTREAM, "invalid_response").inc()
            raise LokiUpstreamError("Loki answered without a successful `data` object")
        if "data" not in body:
            if may_omit_data:
                return None
            UPSTREAM_ERRORS.labels(UPSTREAM, "invalid_response").inc()
            raise LokiUpstreamError("Loki answered without a successful `data` object")
        return body["data"]

    async def query_range(
        self,
        query: str,
        *,
        start_ns: int,
        end_ns: int,
        limit: int,
        direction: str = "backward",
        step: str | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """Loki's `data`: {"resultType", "result", "stats"}. start inclusive, end exclusive."""
        params = {
            "query": query,
            "start": start_ns,
            "end": end_ns,
            "limit": limit,
            "direction": direction,
            "step": step,
        }
        data = await self._get_data(QUERY_RANGE_PATH, params, tenant, extra_headers=CATEGORIZE_LABELS_HEADERS)
        if not isinstance(data, dict):
            raise LokiUpstreamError("Loki's query_range `data` is not an object")
        return data

    async def query(
        self,
        query: str,
        *,
        time_ns: int | None = None,
        limit: int | None = None,
        direction: str | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        params = {"query": query, "time": time_ns, "limit": limit, "direction": direction}
        data = await self._get_data(QUERY_PATH, params, tenant, extra_headers=CATEGORIZE_LABELS_HEADERS)
        if not isinstance(data, dict):
            raise LokiUpstreamError("Loki's query `data` is not an object")
        return data

    async def labels(
        self,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        query: str | None = None,
        tenant: str | None = None,
    ) -> list[str]:
        params = {"start": start_ns, "end": end_ns, "query": query}
        return await self._get_names(LABELS_PATH, params, tenant)

    async def label_values(
        self,
        name: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        query: str | None = None,
        tenant: str | None = None,
    ) -> list[str]:
        params = {"start": start_ns, "end": end_ns, "query": query}
        return await self._get_names(LABEL_VALUES_PATH.format(name=name), params, tenant)

    async def _get_names(self, path: str, params: dict[str, Any], tenant: str | None) -> list[str]:
        """Loki's list answers (label names or values): a list of strings, else a 502."""
        data = await self._get_data(path, params, tenant, may_omit_data=True) or []
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            raise LokiUpstreamError(f"Loki's {path} `data` is not a list of strings")
        return data

    async def index_stats(
        self, query: str, start_ns: int, end_ns: int, tenant: str | None = None
    ) -> dict[str, int]:
        """{"streams", "chunks", "entries", "bytes"} (this endpoint has no status/data wrapper)."""
        body = await self._get(INDEX_STATS_PATH, {"query": query, "start": start_ns, "end": end_ns}, tenant)
        if not isinstance(body, dict):
            raise LokiUpstreamError("Loki's index/stats answer is not an object")
        try:
            return {k: int(body.get(k, 0) or 0) for k in ("streams", "chunks", "entries", "bytes")}
        except (TypeError, ValueError, OverflowError) as exc:
            raise LokiUpstreamError(f"Loki's index/stats answer holds a count that is no number: {exc}") \
                from exc

    async def patterns(
        self,
        query: str,
        start_ns: int,
        end_ns: int,
        tenant: str | None = None,
        step: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {"query": query, "start": start_ns, "end": end_ns, "step": step}
        found = await self._get_data(PATTERNS_PATH, params, tenant, may_omit_data=True) or []
        if not isinstance(found, list):
            raise LokiUpstreamError("Loki's patterns `data` is not a list")
        return found

    async def volume(
        self,
        selector: str,
        start_ns: int,
        end_ns: int,
        tenant: str | None = None,
        *,
        target_labels: Sequence[str] = (),
        step: str | None = None,
    ) -> list[dict[str, Any]]:
        """Bytes per label set from the index (`index/volume`, or `index/volume_range` with a
        step): [{"metric": {...}, "value": [t, "bytes"]}] or [{"metric", "values": [...]}]."""
        params = {
            "query": selector, "start": start_ns, "end": end_ns, "step": step,
            "targetLabels": ",".join(target_labels) or None,
        }
        data = await self._get_data(VOLUME_RANGE_PATH if step else VOLUME_PATH, params, tenant)
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise LokiUpstreamError("Loki's index/volume `data.result` is not a list")
        return result

    async def detected_fields(
        self, query: str, start_ns: int, end_ns: int, tenant: str | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The fields Loki's parsers find in the query's lines (this endpoint has no data wrapper):
        [{"label", "type", "cardinality", "parsers", "jsonPath"?}]."""
        body = await self._get(
            DETECTED_FIELDS_PATH, {"query": query, "start": start_ns, "end": end_ns, "limit": limit}, tenant
        )
        fields = body.get("fields") if isinstance(body, dict) else None
        if fields is None and isinstance(body, dict):
            return []
        if not isinstance(fields, list):
            raise LokiUpstreamError("Loki's detected_fields answer has no `fields` list")
        return fields


    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    @property
    def ready_url(self) -> str:
        return self._base + READY_PATH

    async def ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> bool:
        """Loki answers /ready with 200 through this client's pool (outside the gate: a probe
        must not wait behind the queries it checks on)."""
        try:
            response = await request_within(self._http, "GET", self.ready_url, timeout)
        except httpx.HTTPError:
            return False
        self.last_answer_at = time.monotonic()
        return response.status_code == 200

    async def iter_lines(
        self,
        query: str,
        *,
        start_ns: int,
        end_ns: int,
        tenant: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_lines: int | None = None,
    ) -> AsyncIterator[tuple[int, dict[str, str], str]]:
        """(ts_ns, stream labels, line) oldest first, one page in memory at a time. Pages restart
        at the last timestamp seen (start is inclusive) and skip the entries already yielded at
        that timestamp, so nothing is duplicated or lost even when many entries share it."""
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        # in memory, not in a cursor: entries are told apart by their whole key, not a digest
        boundary = first_boundary(entry_key)
        start = start_ns
        yielded = 0
        while start < end_ns:
            # ask for the duplicates we will skip on top of a full page, so every page moves on,
            # but never for more than Loki's max_entries_limit_per_query allows
            limit = min(page_size + len(boundary.seen), self._max_entries)
            data = await self.query_range(
                query, start_ns=start, end_ns=end_ns, limit=limit, direction="forward", tenant=tenant
            )
            entries = sorted_entries(data, forward=True)
            at_last: list[tuple[dict[str, str], str]] = []  # yielded at the page's last timestamp
            last_ts = start
            for ts, labels, line, _meta in boundary.skip_returned(entries):
                if max_lines is not None and yielded >= max_lines:
                    return
                yield ts, labels, line
                yielded += 1
                if ts != last_ts:
                    last_ts, at_last = ts, []
                at_last.append((labels, line))
            if len(entries) < limit:
                return
            if not at_last:  # Loki sent only entries already yielded, all of one timestamp
                raise TooManyAtOneTimestamp(self._max_entries)
            boundary = boundary.after(last_ts, at_last)
            start = last_ts
