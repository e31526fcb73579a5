"""The HTTP side of the Loki sink: Loki's URLs and auth headers, one push request with its retries,
and the GETs of /ready and query_range.

429, 5xx and network errors are retried with exponential backoff and full jitter, honouring
`Retry-After` (seconds or HTTP date), within `retry_max_total_seconds` per request; then
SinkUnavailable is raised and shipper_push_failures counted. Other 4xx than 400/413 (auth, wrong
URL) are configuration errors: SinkUnavailable at once. 2xx, 400 and 413 are answers for the
caller to read. A 500 for a push over the gRPC message limit between Loki's distributor and its
ingesters (`grpc_server_max_recv_msg_size`, 4 MiB by default; BATCH_MAX_BYTES above it) is
answered as a 413: no retry of the same body can succeed, and the caller sends it again in halves.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from shipper import metrics
from shipper.sinks import SinkUnavailable
from shipper.sinks.loki.config import LokiSinkConfig

log = logging.getLogger("shipper.sinks.loki.client")  # the sink's logger name from before the split

PUSH_PATH = "/loki/api/v1/push"
# in the body of Loki 3.7's 500 "rpc error: code = ResourceExhausted desc = grpc: received message ..."
GRPC_TOO_LARGE = "received message larger than max"
READY_PATH = "/ready"
QUERY_RANGE_PATH = "/loki/api/v1/query_range"
_BODY_SNIPPET_CHARS = 300
_MAX_BACKOFF_DOUBLINGS = 1000


def base_url(url: str) -> str:
    """LOKI_URL may be the server root or the full push URL; return the root."""
    url = url.rstrip("/")
    return url.removesuffix(PUSH_PATH)


def redacted(url: str) -> str:
    """The URL without credentials (user:password@), for messages and logs."""
    try:
        return str(httpx.URL(url).copy_with(userinfo=b""))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<invalid Loki URL>"


def stoppable_sleep(stopping: threading.Event) -> Callable[[float], None]:
    """A sleep between retries that ends the push at once when `stopping` is set (SIGTERM): the
    records stay unacknowledged, so the checkpoint stays and the next start sends them again."""

    def sleep(seconds: float) -> None:
        if stopping.wait(seconds):
            raise SinkUnavailable("stopping: retries of the push to Loki abandoned; its records are "
                                  "sent again on the next start")

    return sleep


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def snippet(text: str) -> str:
    """An answer's body on one line, cut short, for messages."""
    text = " ".join(text.split())
    return text if len(text) <= _BODY_SNIPPET_CHARS else text[:_BODY_SNIPPET_CHARS] + "…"


@dataclass(slots=True)
class Answer:
    """Loki's answer to a push: 2xx (body empty), 400 or 413."""

    status: int
    body: str


@dataclass(slots=True)
class _Retry:
    """A failed attempt worth retrying."""

    reason: str  # shipper_push_retries{reason}: network, 429, 5xx
    problem: str
    retry_after: float | None = None


class Transport:
    """Requests to one Loki, with its auth; the push with retries."""

    def __init__(
        self,
        config: LokiSinkConfig,
        client: httpx.Client,
        *,
        content_headers: Mapping[str, str],
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self.config = config
        self._client = client
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        root = base_url(config.url)
        self._push_url = root + PUSH_PATH
        self._ready_url = root + READY_PATH
        self._query_range_url = root + QUERY_RANGE_PATH
        self.shown_root = redacted(root)
        self._headers = dict(content_headers)
        if config.tenant_id:
            self._headers["X-Scope-OrgID"] = config.tenant_id
        if config.bearer_token:
            self._headers["Authorization"] = f"Bearer {config.bearer_token}"
        self._auth = httpx.BasicAuth(config.username, config.password or "") if config.username else None

    def push(self, body: bytes) -> Answer:
        """POST one push body; return a 2xx/400/413 answer, retry the retryable, raise on the rest."""
        deadline = self._clock() + self.config.retry_max_total_seconds
        attempt = 0
        while True:
            outcome = self._attempt(body)
            if isinstance(outcome, Answer):
                return outcome
            delay = outcome.retry_after if outcome.retry_after is not None else self.backoff(attempt)
            if self._clock() + delay > deadline:
                metrics.PUSH_FAILURES.inc()
                raise SinkUnavailable(
                    f"Loki push to {self.shown_root} failed after {attempt + 1} attempts within the "
                    f"{self.config.retry_max_total_seconds:g}s retry budget; last error: {outcome.problem}"
                )
            metrics.PUSH_RETRIES.labels(reason=outcome.reason).inc()
            log.warning(
                "loki push failed (%s); retry %d in %.2fs", outcome.problem, attempt + 1, delay,
                extra={"event": "loki_push_retry", "reason": outcome.reason, "delay_seconds": delay},
            )
            self._sleep(delay)
            attempt += 1

    def _attempt(self, body: bytes) -> Answer | _Retry:
        started = self._clock()
        try:
            response = self._client.post(
                self._push_url, content=body, headers=self._headers,
                auth=self._auth or httpx.USE_CLIENT_DEFAULT, timeout=self.config.timeout_seconds,
            )
        except httpx.TransportError as exc:
            metrics.PUSH_REQUESTS.labels(status="network").inc()
            return _Retry("network", f"{type(exc).__name__}: {exc}")
        metrics.PUSH_DURATION.observe(max(0.0, self._clock() - started))
        status = response.status_code
        metrics.PUSH_REQUESTS.labels(status=f"{status // 100}xx").inc()
        if status < 300 or status in (400, 413):
            return Answer(status, response.text if status >= 300 else "")
        if status == 500 and GRPC_TOO_LARGE in response.text:
            return Answer(413, response.text)
        problem = f"HTTP {status} {snippet(response.text)}"
        if status != 429 and status < 500:
            metrics.PUSH_FAILURES.inc()
            raise SinkUnavailable(f"Loki at {self.shown_root} refused the push: {problem}")
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return _Retry("429" if status == 429 else "5xx", problem, retry_after)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter in [ceiling/2, ceiling]."""
        # 2.0**attempt overflows a float after 1023 doublings (many attempts with tiny backoffs)
        ceiling = min(
            self.config.retry_max_backoff_seconds,
            self.config.retry_min_backoff_seconds * 2.0 ** min(attempt, _MAX_BACKOFF_DOUBLINGS),
        )
        return ceiling / 2 + self._rng.random() * ceiling / 2

    def ready(self) -> str:
        """Describe Loki's readiness (GET /ready) or raise SinkUnavailable."""
        try:
            response = self._get(self._ready_url)
        except httpx.TransportError as exc:
            raise SinkUnavailable(
                f"Loki at {self.shown_root} is unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code != 200:
            raise SinkUnavailable(
                f"Loki at {self.shown_root} is not ready: "
                f"HTTP {response.status_code} {snippet(response.text)}"
            )
        return f"Loki at {self.shown_root} is ready ({self.config.push_format} push)"

    def query_range(self, params: Mapping[str, str | int]) -> httpx.Response:
        """GET /loki/api/v1/query_range with `params`; the answer unread."""
        return self._get(self._query_range_url, params)

    def _get(self, url: str, params: Mapping[str, str | int] | None = None) -> httpx.Response:
        return self._client.get(
            url, headers=self._auth_headers(), auth=self._auth or httpx.USE_CLIENT_DEFAULT,
            timeout=self.config.timeout_seconds, params=params,
        )

    def _auth_headers(self) -> dict[str, str]:
        return {k: v for k, v in self._headers.items() if k in ("X-Scope-OrgID", "Authorization")}
