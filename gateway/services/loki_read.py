"""Requests of Loki's own clients (Grafana's Loki data source, logcli) to Loki's read API, checked
and scoped before they are passed through: Loki's parameters read as Loki reads them and kept
within the gateway's limits, the key's label policy injected into every selector (`prepare_for`,
with its guardrails, for queries that read lines; `inject_policy` for the index endpoints) and
the answers redacted."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.config import GatewaySettings
from gateway.security import Principal
from gateway.services.errors import QueryError, TooLarge
from gateway.services.logql import check_label_name, inject_policy, reach_back_ns, scan_query
from gateway.services.loki import LokiClient, LokiUpstreamError
from gateway.services.loki_compat import (
    MalformedAnswer,
    Window,
    loki_direction,
    loki_duration,
    loki_limit,
    loki_window,
    redact_values,
)
from gateway.services.loki_passthrough import LokiPassthrough
from gateway.services.query_checks import MAX_QUERY_CHARS, check_bytes, key_policy, prepare_for

LOKI_API = "/loki/api/v1"
MAX_MATCHERS = 32  # match[] parameters of one series request
TAIL_MAX_DELAY_FOR = 5  # Loki's own maximum of delay_for, in seconds

Params = list[tuple[str, str]]


class QueryParams(Protocol):
    """A request's query parameters (starlette's QueryParams)."""

    def getlist(self, key: str) -> list[str]: ...


def first(params: QueryParams, name: str) -> str | None:
    """The first value, as Loki (Go's Form.Get) reads a repeated parameter."""
    values = params.getlist(name)
    return values[0] if values else None


def checked_query(query: str | None) -> str | None:
    """A query within MAX_QUERY_CHARS."""
    if query is not None and len(query) > MAX_QUERY_CHARS:
        raise TooLarge(
            "query_too_long", f"the query has {len(query)} characters", f"keep it under {MAX_QUERY_CHARS}"
        )
    return query


def window_params(window: Window) -> Params:
    return [("start", str(window.start_ns)), ("end", str(window.end_ns))]


def check_aggregate_by(value: str) -> str:
    if value not in ("series", "labels"):
        raise QueryError(
            "invalid_parameter", f"invalid aggregateBy {value[:64]!r}", "see Loki's API documentation"
        )
    return value


def check_target_labels(value: str) -> str:
    return ",".join(check_label_name(name.strip()) for name in value.split(","))


def step_duration(value: str) -> str:
    return loki_duration("step", value)


@dataclass(frozen=True)
class LokiRead:
    """One request of a Loki client: its parameters, who calls, and where it goes."""

    params: QueryParams
    principal: Principal
    settings: GatewaySettings
    upstream: LokiPassthrough
    loki: LokiClient

    def param(self, name: str) -> str | None:
        """The first value; only values we checked go on."""
        return first(self.params, name)

    def required(self, name: str) -> str:
        value = self.param(name)
        if value is None or not value.strip():
            raise QueryError("missing_parameter", f"the {name} parameter is required", f"add {name}=...")
        return value

    def query(self, *, required: bool = True) -> str | None:
        query = self.required("query") if required else self.param("query")
        return checked_query(query) or None

    def window(self) -> Window:
        return loki_window(
            start=self.param("start"),
            end=self.param("end"),
            since=self.param("since"),
            now_ns=time.time_ns(),
            max_hours=self.settings.query_max_range_hours,
        )

    def scoped_selector(self, query: str | None) -> str | None:
        """For the index endpoints (labels, series, stats, volume): the client's selector with the
        policy injected, the policy alone when there is none. The 'matches every stream'
        guardrail is for reading lines: {service_name=~".+"} is how Logs Drilldown lists services."""
        policy = key_policy(self.principal)
        if query is None:
            return self.principal.label_policy
        scanned = scan_query(query)
        return inject_policy(scanned, policy).text if policy else scanned.text

    def redacting(self) -> bool:
        return self.settings.redact_log_lines

    def optional(self, name: str, check: Callable[[str], Any] = str) -> Params:
        value = self.param(name)
        if value is None:
            return []
        checked = check(value)
        return [] if checked is None else [(name, str(checked))]

    def limit(self, value: str) -> int | None:
        return loki_limit(value, self.settings.query_max_limit)

    async def scoped_log_query(self, start_ns: int, end_ns: int) -> str:
        """The `query` of a request that reads lines, through the LogQL proxy's preparation
        (policy and guardrails) and the byte guardrail. A query without any `{` reads no logs
        (Grafana's `vector(1)+vector(1)` health check): it goes on as it is."""
        query = self.query() or ""
        if "{" not in query:
            return query
        scanned = prepare_for(self.principal, query, self.settings)
        reach = reach_back_ns(scanned)
        await check_bytes(
            self.loki, scanned, start_ns - reach, end_ns, self.principal.tenant, self.settings.query_max_bytes
        )
        return scanned.text

    def query_options(self) -> Params:
        return [*self.optional("direction", loki_direction), *self.optional("limit", self.limit)]

    def selector_params(self) -> Params:
        selector = self.scoped_selector(self.query(required=False))
        return [("query", selector)] if selector else []

    def series_params(self) -> Params:
        given = [*self.params.getlist("match[]"), *self.params.getlist("match")]
        if len(given) > MAX_MATCHERS:
            raise QueryError(
                "too_many_matchers", f"{len(given)} match[] parameters", f"give at most {MAX_MATCHERS}"
            )
        selectors = [s for s in (self.scoped_selector(m) for m in given) if s]
        if not given and self.principal.label_policy:
            selectors = [self.principal.label_policy]
        return [*window_params(self.window()), *(("match[]", s) for s in selectors)]

    def volume_params(self) -> Params:
        return [
            *window_params(self.window()),
            ("query", self.scoped_selector(self.query()) or ""),
            *self.optional("limit", self.limit),
            *self.optional("targetLabels", check_target_labels),
            *self.optional("aggregateBy", check_aggregate_by),
        ]

    def detected_params(self, query: str, window: Window) -> Params:
        return [
            ("query", query),
            *window_params(window),
            *self.optional("step", step_duration),
            *(p for n in ("limit", "line_limit", "field_limit") for p in self.optional(n, self.limit)),
        ]

    async def get(self, path: str, params: Params, *, flags: str | None = None) -> Any:
        return await self.upstream.get(f"{LOKI_API}/{path}", params, self.principal.tenant, flags=flags)

    async def get_object(self, path: str, params: Params) -> dict[str, Any]:
        """An answer that must be a JSON object (index statistics, detected fields and labels)."""
        body = await self.get(path, params)
        if not isinstance(body, dict):
            raise LokiUpstreamError(f"Loki's {path} answer is not an object")
        return body

    async def get_data(
        self, path: str, params: Params, redact: Callable[[Any], Any] | None, *, flags: str | None = None
    ) -> dict[str, Any]:
        """Loki's {"status": "success", "data": ...} answer, `data` redacted."""
        body = await self.get(path, params, flags=flags)
        if not isinstance(body, dict) or body.get("status") != "success":
            raise LokiUpstreamError(f"Loki's {LOKI_API}/{path} answer is not a success")
        # Loki leaves `data` out of an empty label listing ({"status": "success"})
        if redact is not None and self.redacting() and "data" in body:
            try:
                body = {**body, "data": redact(body["data"])}
            except MalformedAnswer as exc:
                raise LokiUpstreamError(f"Loki's {LOKI_API}/{path} answer is malformed: {exc}") from exc
        return body

    async def detected_field_values(self, name: str) -> dict[str, Any]:
        """The values of one detected field, redacted like label values."""
        check_label_name(name)
        window = self.window()
        query = await self.scoped_log_query(window.start_ns, window.end_ns)
        path = f"detected_field/{name}/values"
        body = await self.get(path, self.detected_params(query, window))
        if not isinstance(body, dict):
            raise LokiUpstreamError("Loki's detected_field values answer is not an object")
        if self.redacting():
            try:
                body = {**body, "values": redact_values(name, body.get("values") or [])}
            except MalformedAnswer as exc:
                raise LokiUpstreamError(f"Loki's detected_field values answer is malformed: {exc}") from exc
        return body


def tail_params(params: QueryParams, principal: Principal, settings: GatewaySettings) -> dict[str, str]:
    """Loki's tail parameters, checked: the query prepared like any other, delay_for within Loki's
    maximum, start within the gateway's range limit, limit within its maximum."""
    query = first(params, "query")
    if not query or not query.strip():
        raise QueryError("missing_parameter", "the query parameter is required", "add query=...")
    if len(query) > MAX_QUERY_CHARS:
        raise TooLarge("query_too_long", "the query is too long", f"keep it under {MAX_QUERY_CHARS}")
    scanned = prepare_for(principal, query, settings)
    chosen = {"query": scanned.text}
    start = first(params, "start")
    if start:
        window = loki_window(
            start=start, end=None, since=None, now_ns=time.time_ns(), max_hours=settings.query_max_range_hours
        )
        chosen["start"] = str(window.start_ns)
    limit = loki_limit(first(params, "limit"), settings.query_max_limit)
    if limit is not None:
        chosen["limit"] = str(limit)
    delay = first(params, "delay_for")
    if delay is not None:
        if not (delay.isascii() and delay.isdigit() and int(delay) <= TAIL_MAX_DELAY_FOR):
            raise QueryError("invalid_parameter", "delay_for must be 0 to 5 seconds", "e.g. delay_for=2")
        chosen["delay_for"] = delay
    return chosen

