"""How a Loki call fails, as kinds of gateway.services.errors (gateway.errors maps each to its
status): connect error -> unavailable (503), timeout -> timeout (504), Loki 429 or no free slot
-> unavailable with a retry time, other Loki 4xx -> a query error (400) with Loki's message, 5xx or
junk -> upstream error (502)."""

from __future__ import annotations

from gateway.services.errors import (
    QueryError,
    ServiceError,
    TooMuchAtOnce,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.services.logql_hints import explain as explain_parse_error

UPSTREAM = "loki"  # the upstream label of the UPSTREAM_ERRORS metric
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
