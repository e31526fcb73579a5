"""Loki's HTTP query API behind one small client. Every failure is translated here, at the
boundary, into a LokiError of a kind gateway.errors maps to a status, so routes never see httpx
exceptions: connect error -> unavailable (503), timeout -> timeout (504), Loki 429 or no free slot
-> unavailable with a retry time, other Loki 4xx -> a query error (400) with Loki's message, 5xx or
junk -> upstream error (502).

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
from gateway.services.bounded_http import ConcurrencyGate, GateTimeout, request_within
from gateway.services.errors import (
    QueryError,
    ServiceError,
    TooMuchAtOnce,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.services.logql_hints import explain as explain_parse_error

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
METADATA_CATEGORIES = ("structuredMetadata", "parsed")
# Headers that choose a tenant or a label policy inside Loki/its proxies: only we may set them.
FORBIDDEN_FORWARD_HEADERS = frozenset({"x-scope-orgid", "x-prom-label-policy"})
MAX_ERROR_MESSAGE_CHARS = 500
DEFAULT_PAGE_SIZE = 1000
READY_TIMEOUT_SECONDS = 2.0
UPSTREAM = "loki"
LOKI_BUSY_RETRY_AFTER_SECONDS = 5


class LokiError(ServiceError):
    """A Loki call failed; its kind (see gateway.services.errors) says how."""


class LokiUnavailable(LokiError, UpstreamUnavailable):
    def __init__(self, detail: str) -> None:
        super().__init__(
            "loki_unavailable",
            f"Loki is not reachable: {detail}",
            "Loki may be down or restarting; check LOKI_URL and GET /health/ready, then retry",
        )


class LokiTimeout(LokiError, UpstreamTimeout):
    def __init__(self, timeout: float) -> None:
        super().__init__(
            "loki_timeout",
            f"Loki did not answer within {timeout:g}s",
            "narrow the query: a shorter time range, more specific labels, or a smaller limit",
        )


class LokiBadRequest(LokiError, QueryError):
    def __init__(self, message: str, query: str | None = None) -> None:
        message, hint = explain_parse_error(message, query)
        super().__init__("loki_bad_request", message, hint)


class LokiBusy(LokiError, UpstreamUnavailable):
    def __init__(self, message: str) -> None:
        super().__init__(
            "loki_busy",
            f"Loki is overloaded: {message}",
            "retry in a few seconds, or narrow the query",
            retry_after_seconds=LOKI_BUSY_RETRY_AFTER_SECONDS,
        )


class LokiQueueFull(LokiError, UpstreamUnavailable):
    """The gateway's own bound on Loki calls in flight (LOKI_MAX_CONCURRENT_REQUESTS) stayed full."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "loki_busy",
            f"too many Loki queries in flight: {detail}",
            "retry after the Retry-After seconds; fewer concurrent or narrower queries get through sooner",
            retry_after_seconds=LOKI_BUSY_RETRY_AFTER_SECONDS,
        )


class LokiUpstreamError(LokiError, UpstreamError):
    def __init__(self, message: str) -> None:
        super().__init__("loki_error", message, "Loki failed to answer; retry later or narrow the query")


class TooManyAtOneTimestamp(LokiError, TooMuchAtOnce):
    """More entries share one timestamp than Loki returns to one query: no page moves past them."""

    def __init__(self, maximum: int) -> None:
        super().__init__(
            "too_many_at_one_timestamp",
            f"more than about {maximum} entries share one timestamp: pages cannot walk past them",
            "narrow the query (more specific labels, level or q=) so fewer entries share that timestamp",
        )


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
        return {k: int(body.get(k, 0) or 0) for k in ("streams", "chunks", "entries", "bytes")}

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
        start = start_ns
        seen_at_start: set[tuple[tuple[tuple[str, str], ...], str]] = set()
        yielded = 0
        while start < end_ns:
            # ask for the duplicates we will skip on top of a full page, so every page moves on,
            # but never for more than Loki's max_entries_limit_per_query allows
            limit = min(page_size + len(seen_at_start), self._max_entries)
            data = await self.query_range(
                query, start_ns=start, end_ns=end_ns, limit=limit, direction="forward", tenant=tenant
            )
            entries = sorted_entries(data, forward=True)
            fresh_boundary: set[tuple[tuple[tuple[str, str], ...], str]] = set()
            last_ts = start
            fresh = 0
            for ts, labels, line, _meta in entries:
                key = (tuple(sorted(labels.items())), line)
                if ts == start and key in seen_at_start:
                    continue
                if max_lines is not None and yielded >= max_lines:
                    return
                yield ts, labels, line
                yielded += 1
                fresh += 1
                if ts != last_ts:
                    last_ts = ts
                    fresh_boundary = set()
                fresh_boundary.add(key)
            if len(entries) < limit:
                return
            if not fresh:  # Loki sent only entries already yielded, all of one timestamp
                raise TooManyAtOneTimestamp(self._max_entries)
            if last_ts == start:
                seen_at_start |= fresh_boundary
            else:
                start, seen_at_start = last_ts, fresh_boundary


Entry = tuple[int, dict[str, str], str, dict[str, str] | None]  # ts_ns, labels, line, metadata


def sorted_entries(data: Mapping[str, Any], *, forward: bool) -> list[Entry]:
    """All entries of a `streams` result, merged across streams in the query's direction (ties
    broken by labels then line, so the order is deterministic)."""
    if data.get("resultType") != "streams":
        raise LokiUpstreamError(f"expected a log (streams) result, got {data.get('resultType')!r}")
    keyed: list[tuple[int, str, str, int, Entry]] = []
    try:
        for stream in data.get("result") or []:
            labels = stream.get("stream") or {}
            if not all(isinstance(v, str) for v in labels.values()):
                raise TypeError("label values must be strings")
            label_key = "\x00".join(f"{k}={v}" for k, v in sorted(labels.items()))
            for value in stream.get("values") or []:
                ts, line = int(value[0]), value[1]
                meta = entry_metadata(value)
                if not isinstance(line, str):
                    raise TypeError("a log line must be a string")
                # the running index keeps the native tuple sort away from comparing the entries
                keyed.append((ts, label_key, line, len(keyed), (ts, labels, line, meta)))
    except (TypeError, ValueError, IndexError, KeyError, AttributeError) as exc:
        UPSTREAM_ERRORS.labels(UPSTREAM, "invalid_response").inc()
        raise LokiUpstreamError(f"Loki answered with a malformed streams result: {exc}") from exc
    keyed.sort(reverse=not forward)
    return [k[4] for k in keyed]


def count_entries(data: Mapping[str, Any]) -> int:
    """How many entries a `streams` result holds (0 for anything malformed)."""
    try:
        return sum(len(stream.get("values") or ()) for stream in data.get("result") or ())
    except (TypeError, AttributeError):
        return 0


def entry_metadata(value: Sequence[Any]) -> dict[str, str] | None:
    """An entry's structured metadata and parsed labels as one flat object (None when it has
    neither), from the third element of a categorized-labels answer. Loki already renames a
    parsed label that collides with a stream label or a metadata name (`level_extracted`), so
    the two never overwrite each other. TypeError when the element is not of that form."""
    if len(value) < 3:
        return None
    categories = value[2]
    if not isinstance(categories, dict):
        raise TypeError("an entry's third element must be an object of label categories")
    if not categories:  # what Loki sends for most entries: `{}`
        return None
    flat: dict[str, str] = {}
    # known categories first; one a later Loki may add is kept too, never dropped
    names = [*METADATA_CATEGORIES, *(name for name in categories if name not in METADATA_CATEGORIES)]
    for name in names:
        fields = categories.get(name)
        if fields is None:
            continue
        if not _is_str_map(fields):
            raise TypeError(f"an entry's {name!r} must be an object of strings")
        for key, text in fields.items():
            flat.setdefault(key, text)
    return flat or None


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
