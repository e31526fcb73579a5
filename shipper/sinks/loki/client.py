"""LokiSink: push records to Loki's `/loki/api/v1/push`, with retries and partial-success handling.

- Batches by bytes and entries (`batch_max_bytes`, `batch_max_entries`); the wait-time part of
  batching belongs to the caller (the pipeline decides when to call push()).
- 429, 5xx and network errors are retried with exponential backoff and full jitter, honouring
  `Retry-After` (seconds or HTTP date), within `retry_max_total_seconds` per request; then
  SinkUnavailable is raised and shipper_push_failures counted.
- One request per live stream: Loki's answer to a push describes only the last stream of it (a
  push whose first stream was refused and whose last was fine is answered 204), see late.py.
  Entries Loki would refuse as too far behind go to their `late_hour` stream (late.py); late
  streams, which cannot be refused for that, share requests.
- A 400 is a partial success: the body is read for the refused entries (rejections.py), those are
  returned in PushResult.rejected. When the answer accounts for every entry (the ingester's
  `total ignored: N out of M` for the whole stream, or validation messages matching their count)
  the rest is acknowledged as stored; otherwise the rest is sent again (Loki drops exact
  duplicates). When nothing in the body can be matched the batch is bisected.
- Other 4xx (auth, wrong URL) are configuration errors: SinkUnavailable at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from operator import attrgetter

import httpx
from prometheus_client import Counter

from shipper import loki_defaults, metrics
from shipper.config import ShipperSettings
from shipper.models import LogRecord
from shipper.records import gc_paused
from shipper.sinks import PushResult, RejectedEntry, SinkUnavailable
from shipper.sinks.loki import rejections
from shipper.sinks.loki.encode import Encoder, Entry, PushFormat, group_streams
from shipper.sinks.loki.late import LATE_STREAM, LateRouter
from shipper.sinks.loki.prepare import Prepared, Preparer

log = logging.getLogger(__name__)

PUSH_PATH = "/loki/api/v1/push"
READY_PATH = "/ready"
QUERY_RANGE_PATH = "/loki/api/v1/query_range"
PRESENT_QUERY_LIMIT = 5000  # entries per query of drop_present (Loki's default max_entries_limit_per_query)
MAX_PRESENT_QUERIES = 100  # per drop_present call: bounded by the push size in practice
MAX_PARTIAL_ROUNDS = 20  # 400 answers read per batch before falling back to bisection only
MAX_REJECTION_LOG_LINES = 100  # per push() call; the rest is summarized in one line
_BODY_SNIPPET_CHARS = 300
_NS_PER_HOUR = 3600 * 1_000_000_000
_MAX_BACKOFF_DOUBLINGS = 1000


@dataclass(frozen=True, slots=True)
class LokiSinkConfig:
    url: str = loki_defaults.LOKI_URL
    tenant_id: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    push_format: PushFormat = loki_defaults.PUSH_FORMAT
    timeout_seconds: float = loki_defaults.TIMEOUT_SECONDS
    batch_max_bytes: int = loki_defaults.BATCH_MAX_BYTES
    batch_max_entries: int = loki_defaults.BATCH_MAX_ENTRIES
    retry_min_backoff_seconds: float = loki_defaults.RETRY_MIN_BACKOFF_SECONDS
    retry_max_backoff_seconds: float = loki_defaults.RETRY_MAX_BACKOFF_SECONDS
    retry_max_total_seconds: float = loki_defaults.RETRY_MAX_TOTAL_SECONDS
    max_line_bytes: int = loki_defaults.MAX_LINE_BYTES
    max_age_hours: float | None = loki_defaults.MAX_AGE_HOURS

    def __post_init__(self) -> None:
        if self.bearer_token and (self.username or self.password):
            raise ValueError("Loki auth: set either a username/password or a bearer token, not both")
        if self.password and not self.username:
            raise ValueError("Loki auth: a password needs a username (LOKI_USERNAME)")
        if self.batch_max_bytes <= 0 or self.batch_max_entries <= 0:
            raise ValueError("batch_max_bytes and batch_max_entries must be positive")
        if self.max_line_bytes < 1024:
            raise ValueError("max_line_bytes must be at least 1024")
        if not 0 < self.retry_min_backoff_seconds <= self.retry_max_backoff_seconds:
            raise ValueError("retry backoff: need 0 < retry_min_backoff_seconds <= retry_max_backoff_seconds")
        if self.retry_max_total_seconds < 0:
            raise ValueError("retry_max_total_seconds must not be negative")

    @classmethod
    def from_settings(cls, settings: ShipperSettings) -> LokiSinkConfig:
        return cls(
            url=settings.loki_url,
            tenant_id=settings.loki_tenant_id or None,
            username=settings.loki_username or None,
            password=settings.loki_password.get_secret_value() if settings.loki_password else None,
            bearer_token=(
                settings.loki_bearer_token.get_secret_value() if settings.loki_bearer_token else None
            ),
            push_format=settings.loki_push_format,
            timeout_seconds=settings.loki_timeout_seconds,
            batch_max_bytes=settings.batch_max_bytes,
            batch_max_entries=settings.batch_max_entries,
            retry_min_backoff_seconds=settings.retry_min_backoff_seconds,
            retry_max_backoff_seconds=settings.retry_max_backoff_seconds,
            retry_max_total_seconds=settings.retry_max_total_seconds,
            max_line_bytes=settings.max_line_bytes,
            max_age_hours=settings.max_age_hours if settings.max_age_hours > 0 else None,
        )


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


class _Encoded(list[Entry]):
    """A batch with its request body, encoded ahead by prepare_push(). What a partial answer
    leaves to send again is a plain list (a slice or a new list), encoded when sent."""

    __slots__ = ("body",)

    def __init__(self, entries: list[Entry], body: bytes) -> None:
        super().__init__(entries)
        self.body = body


@dataclass(slots=True)
class _Request:
    """One request of a planned push: a live stream's batch (encoded ahead or not), or the late
    streams' entries (checked and batched when sent)."""

    entries: list[Entry]
    late: bool = False


@dataclass(slots=True)
class PreparedPush:
    """What LokiSink.prepare_push() made, for push_prepared()."""

    records: Sequence[LogRecord]
    prepared: Prepared | None  # None: nothing to push
    late: int  # entries routed to a late stream when prepared
    plan: list[_Request]


@dataclass(slots=True)
class _Answer:
    status: int
    body: str


class LokiSink:
    """Implements shipper.sinks.Sink for Grafana Loki."""

    def __init__(
        self,
        config: LokiSinkConfig,
        client: httpx.Client,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now_ns: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._client = client
        self._owns_client = False
        self._sleep = sleep
        self._clock = clock
        self._now_ns = now_ns
        self._rng = rng or random.Random()
        root = base_url(config.url)
        self._push_url = root + PUSH_PATH
        self._ready_url = root + READY_PATH
        self._query_range_url = root + QUERY_RANGE_PATH
        self._shown_root = redacted(root)
        self._encoder = Encoder(config.push_format)
        self._headers = self._encoder.headers
        if config.tenant_id:
            self._headers["X-Scope-OrgID"] = config.tenant_id
        if config.bearer_token:
            self._headers["Authorization"] = f"Bearer {config.bearer_token}"
        self._auth = httpx.BasicAuth(config.username, config.password or "") if config.username else None
        max_age_ns = int(config.max_age_hours * _NS_PER_HOUR) if config.max_age_hours else None
        self._preparer = Preparer(max_line_bytes=config.max_line_bytes, max_age_ns=max_age_ns)
        self._late = LateRouter()

    @classmethod
    def from_settings(
        cls, settings: ShipperSettings, client: httpx.Client | None = None, *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> LokiSink:
        config = LokiSinkConfig.from_settings(settings)
        if client is not None:
            return cls(config, client, sleep=sleep)
        sink = cls(config, httpx.Client(timeout=config.timeout_seconds), sleep=sleep)
        sink._owns_client = True
        return sink

    def close(self) -> None:
        """Close the HTTP client if this sink created it (from_settings without a client)."""
        if self._owns_client:
            self._client.close()

    # -- Sink ------------------------------------------------------------------------------------

    def push(self, records: Sequence[LogRecord], *, source: str) -> PushResult:
        return self.push_prepared(self.prepare_push(records, source=source), source=source)

    def prepare_push(self, records: Sequence[LogRecord], *, source: str) -> PreparedPush:
        """The CPU part of push(), which a caller may run ahead of time (the pipeline does, on its
        reading thread, while the previous push is in flight): limits applied, entries sorted and
        routed with what Loki is known to hold now, live requests encoded. push_prepared() routes
        again with what Loki acknowledged meanwhile and encodes afresh if that moved anything.
        The age limits use the time of this call. It may run on another thread than a push under
        way: the preparer's caches and the late router are dicts changed one item at a time
        (atomic under the GIL); at worst a late stream gets two label objects, which Loki reads
        as one stream."""
        if not records:
            return PreparedPush(records, None, 0, [])
        with gc_paused():
            prepared = self._preparer.prepare(records, now_ns=self._now_ns())
            prepared.entries.sort(key=_ts_of)  # oldest first: no batch lands "too far behind" a later one
            late = self._late.route(prepared.entries)
            return PreparedPush(records, prepared, late, self._plan(prepared.entries, encode=True))

    def push_prepared(self, push: PreparedPush, *, source: str) -> PushResult:
        """Send what prepare_push() made: the second half of push()."""
        result = PushResult()
        prepared, records = push.prepared, push.records
        if prepared is None:
            return result
        plan, late = push.plan, push.late
        moved = self._late.route(prepared.entries)  # pushes acknowledged since it was prepared
        if moved:
            late += moved
            plan = self._plan(prepared.entries, encode=False)
        if late:
            metrics.RECORDS_ADJUSTED.labels(source=source, reason=LATE_STREAM).inc(late)
        for reason, count in prepared.adjusted.items():
            metrics.RECORDS_ADJUSTED.labels(source=source, reason=reason).inc(count)
        reporter = _RejectionReporter(source)
        for index in prepared.too_old:
            result.rejected.append(RejectedEntry(records[index], rejections.TOO_OLD))
            reporter.report(records[index], rejections.TOO_OLD, counter=metrics.RECORDS_SKIPPED)
        for request in plan:
            if request.late:
                for batch in self._batches(self._not_held(request.entries, source, result)):
                    self._push_batch(batch, records, source, result, reporter)
            else:
                self._push_batch(request.entries, records, source, result, reporter)
        reporter.finish()
        return result

    def _plan(self, entries: list[Entry], *, encode: bool) -> list[_Request]:
        """The requests of a push, in sending order: each live stream alone, batched (and encoded
        with `encode`); the late streams together, batched when sent (what Loki holds already
        is taken out first, see _not_held)."""
        plan = []
        for group in self._late.requests(entries):
            if self._late.is_late(group[0].stream):
                plan.append(_Request(group, late=True))
                continue
            for batch in self._batches(group):
                plan.append(_Request(_Encoded(batch, self._encode(batch)) if encode else batch))
        return plan

    def drop_present(self, records: list[LogRecord], *, source: str) -> tuple[list[LogRecord], int]:
        """The records Loki does not hold yet, and how many it holds already (same labels -
        including their late streams -, timestamp and line), found with bounded queries: one
        stream and the time range of its records at a time. Used for the first resend after an
        unclean stop (pipeline.py). Loki answers for old time ranges from its store only, so
        entries older than its ingester query window (about 3 h) that were pushed moments ago
        are not seen until their chunks are flushed: those are sent again, as before. When Loki
        cannot answer, everything is sent (a duplicate at worst, never a loss)."""
        if not records:
            return records, 0
        prepared = self._preparer.prepare(records, now_ns=self._now_ns())
        by_stream: dict[str, list[Entry]] = {}
        for entry in prepared.entries:
            by_stream.setdefault(entry.stream.label_string, []).append(entry)
        present: set[int] = set()
        for selector, entries in by_stream.items():
            try:
                held = self._held(selector, min(map(_ts_of, entries)), max(map(_ts_of, entries)))
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                log.warning("could not ask Loki what it holds before a resend (%s); sending all",
                            _snippet(str(exc)), extra={"event": "loki_resend_check_failed", "source": source})
                return records, 0
            present.update(entry.index for entry in entries if (entry.ts_ns, entry.line) in held)
        if present:
            log.info("resend after an unclean stop: %d of %d records already in Loki, not sent again",
                     len(present), len(records),
                     extra={"event": "loki_resend_checked", "source": source, "present": len(present)})
        return [record for index, record in enumerate(records) if index not in present], len(present)

    def _not_held(self, entries: list[Entry], source: str, result: PushResult) -> list[Entry]:
        """The late entries Loki does not hold yet. An entry goes late because its live stream
        holds something more than an hour newer; often it is history shipped before - a
        backfill, an object rewritten and read again, a resend - which the live stream already
        holds, and sending it to its late stream would store it twice. So Loki is asked first,
        per live stream (its selector also matches the late streams) and hour; what it holds is
        acknowledged without sending. Same visibility limit as drop_present; when Loki cannot
        answer, everything is sent."""
        if not entries:
            return entries
        groups: dict[tuple[str, int], list[Entry]] = {}
        for entry in entries:
            key = (self._late.live_of(entry.stream).label_string, entry.ts_ns // _NS_PER_HOUR)
            groups.setdefault(key, []).append(entry)
        missing: list[Entry] = []
        held_entries: list[Entry] = []
        for (selector, _), group in groups.items():
            try:
                held = self._held(selector, min(map(_ts_of, group)), max(map(_ts_of, group)))
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                log.warning("could not ask Loki whether late entries are held already (%s); sending them",
                            _snippet(str(exc)), extra={"event": "loki_late_check_failed", "source": source})
                return entries
            for entry in group:
                (held_entries if (entry.ts_ns, entry.line) in held else missing).append(entry)
        if held_entries:
            self._acknowledge(held_entries, source, result)
            log.info("%d of %d late entries already in Loki, not sent again", len(held_entries), len(entries),
                     extra={"event": "loki_late_held", "source": source, "held": len(held_entries)})
        return missing

    def _held(self, selector: str, start_ns: int, end_ns: int) -> set[tuple[int, str]]:
        """(ts, line) of every entry Loki returns for `selector` in [start, end], paging forward."""
        held: set[tuple[int, str]] = set()
        cursor = start_ns
        for _ in range(MAX_PRESENT_QUERIES):
            response = self._client.get(
                self._query_range_url, headers=self._auth_headers(),
                auth=self._auth or httpx.USE_CLIENT_DEFAULT, timeout=self.config.timeout_seconds,
                params={"query": selector, "start": cursor, "end": end_ns + 1, "limit": PRESENT_QUERY_LIMIT,
                        "direction": "forward"},
            )
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code} {response.text}")
            found = [(int(value[0]), str(value[1]))
                     for stream in response.json()["data"]["result"] for value in stream["values"]]
            held.update(found)
            if len(found) < PRESENT_QUERY_LIMIT:
                return held
            last = max(ts for ts, _ in found)
            if last == cursor:
                raise ValueError(f"more than {PRESENT_QUERY_LIMIT} entries share timestamp {cursor}")
            cursor = last  # entries at `last` come again: the set absorbs them
        raise ValueError(f"more than {MAX_PRESENT_QUERIES} pages of entries to compare")

    def ready(self) -> str:
        """Describe Loki's readiness (GET /ready) or raise SinkUnavailable."""
        try:
            response = self._client.get(
                self._ready_url, headers=self._auth_headers(), auth=self._auth or httpx.USE_CLIENT_DEFAULT,
                timeout=self.config.timeout_seconds,
            )
        except httpx.TransportError as exc:
            raise SinkUnavailable(
                f"Loki at {self._shown_root} is unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code != 200:
            raise SinkUnavailable(
                f"Loki at {self._shown_root} is not ready: "
                f"HTTP {response.status_code} {_snippet(response.text)}"
            )
        return f"Loki at {self._shown_root} is ready ({self.config.push_format} push)"

    # -- batching ----------------------------------------------------------------------------------

    def _batches(self, entries: list[Entry]) -> Iterator[list[Entry]]:
        max_bytes, max_entries = self.config.batch_max_bytes, self.config.batch_max_entries
        start, size = 0, 0
        for position, entry in enumerate(entries):
            if position > start and (size + entry.size > max_bytes or position - start >= max_entries):
                yield entries[start:position]
                start, size = position, 0
            size += entry.size
        if start < len(entries):
            yield entries[start:]

    def _push_batch(
        self,
        batch: list[Entry],
        records: Sequence[LogRecord],
        source: str,
        result: PushResult,
        reporter: _RejectionReporter,
    ) -> None:
        work = [batch]
        partial_rounds = 0
        while work:
            pending = work.pop()
            answer = self._send(pending)
            if answer.status < 300:
                self._acknowledge(pending, source, result)
                continue
            verdict = _NOTHING_KNOWN
            if answer.status == 400:
                if rejections.is_request_error(answer.body):
                    metrics.PUSH_FAILURES.inc()
                    raise SinkUnavailable(f"Loki could not read our push request: {_snippet(answer.body)}")
                if partial_rounds < MAX_PARTIAL_ROUNDS:
                    verdict = rejections.read_refusal(answer.body, pending)
                    partial_rounds += 1
            if verdict.refused:
                refused = dict(verdict.refused)
                rest = [entry for entry in pending if entry.index not in refused]
                moved = self._late_again(pending, refused, source)  # too far behind: to the late stream
                for index, reason in refused.items():
                    self._reject(records[index], reason, result, reporter)
                if verdict.settled:
                    # Loki's answer accounts for every entry of the push (`total ignored: N out of
                    # M` with M all we sent): the rest is stored, and a resend would only store it
                    # again in another chunk. A count that is only N can hide what the distributor
                    # dropped before the ingester (structured metadata too large, say).
                    self._acknowledge(rest, source, result)
                    rest = []
                self._late.route(rest)  # entries the answer showed to be too far behind too
                rest, now_late = self._late.split(rest)
                now_late = self._not_held([*now_late, *moved], source, result)
                for group in self._late.requests([*rest, *now_late]):
                    work.append(group)
            elif len(pending) > 1:
                middle = len(pending) // 2
                work.append(pending[middle:])
                work.append(pending[:middle])  # popped first: older half first
            else:
                too_large = answer.status == 413
                reason = rejections.LINE_TOO_LONG if too_large else rejections.classify(answer.body)
                self._reject(records[pending[0].index], reason, result, reporter)

    def _late_again(self, pending: list[Entry], refused: dict[int, str], source: str) -> list[Entry]:
        """Entries of a live stream refused as too far behind, moved to their late stream (and
        taken out of `refused`): they are sent again, not lost."""
        moved = []
        for entry in pending:
            if refused.get(entry.index) == rejections.TOO_FAR_BEHIND and not self._late.is_late(entry.stream):
                del refused[entry.index]
                self._late.refused_too_far_behind(entry)
                moved.append(entry)
        if moved:
            metrics.RECORDS_ADJUSTED.labels(source=source, reason=LATE_STREAM).inc(len(moved))
        return moved

    def _acknowledge(self, entries: list[Entry], source: str, result: PushResult) -> None:
        self._late.acknowledged(entries)
        line_bytes = sum(map(_line_bytes_of, entries))
        result.accepted += len(entries)
        result.accepted_bytes += line_bytes
        metrics.LINES_SHIPPED.labels(source=source).inc(len(entries))
        metrics.BYTES_SHIPPED.labels(source=source).inc(line_bytes)

    @staticmethod
    def _reject(record: LogRecord, reason: str, result: PushResult, reporter: _RejectionReporter) -> None:
        result.rejected.append(RejectedEntry(record, reason))
        reporter.report(record, reason, counter=metrics.ENTRIES_REJECTED)

    # -- one request, with retries ---------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        return {k: v for k, v in self._headers.items() if k in ("X-Scope-OrgID", "Authorization")}

    def _encode(self, entries: list[Entry]) -> bytes:
        with gc_paused():
            return self._encoder.encode(group_streams(entries, in_ts_order=True))

    def _send(self, entries: list[Entry]) -> _Answer:
        """POST the entries (encoded already when prepare_push made them an _Encoded); return
        2xx/400/413 answers, retry the retryable, raise on the rest."""
        body = entries.body if isinstance(entries, _Encoded) else self._encode(entries)
        deadline = self._clock() + self.config.retry_max_total_seconds
        attempt = 0
        while True:
            started = self._clock()
            retry_after: float | None = None
            try:
                response = self._client.post(
                    self._push_url, content=body, headers=self._headers,
                    auth=self._auth or httpx.USE_CLIENT_DEFAULT, timeout=self.config.timeout_seconds,
                )
            except httpx.TransportError as exc:
                metrics.PUSH_REQUESTS.labels(status="network").inc()
                retry_reason, problem = "network", f"{type(exc).__name__}: {exc}"
            else:
                metrics.PUSH_DURATION.observe(max(0.0, self._clock() - started))
                status = response.status_code
                metrics.PUSH_REQUESTS.labels(status=f"{status // 100}xx").inc()
                if status < 300 or status in (400, 413):
                    return _Answer(status, response.text if status >= 300 else "")
                problem = f"HTTP {status} {_snippet(response.text)}"
                if status == 429:
                    retry_reason = "429"
                elif status >= 500:
                    retry_reason = "5xx"
                else:
                    metrics.PUSH_FAILURES.inc()
                    raise SinkUnavailable(f"Loki at {self._shown_root} refused the push: {problem}")
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            if self._clock() + delay > deadline:
                metrics.PUSH_FAILURES.inc()
                raise SinkUnavailable(
                    f"Loki push to {self._shown_root} failed after {attempt + 1} attempts within the "
                    f"{self.config.retry_max_total_seconds:g}s retry budget; last error: {problem}"
                )
            metrics.PUSH_RETRIES.labels(reason=retry_reason).inc()
            log.warning(
                "loki push failed (%s); retry %d in %.2fs", problem, attempt + 1, delay,
                extra={"event": "loki_push_retry", "reason": retry_reason, "delay_seconds": delay},
            )
            self._sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter in [ceiling/2, ceiling]."""
        # 2.0**attempt overflows a float after 1023 doublings (many attempts with tiny backoffs)
        ceiling = min(
            self.config.retry_max_backoff_seconds,
            self.config.retry_min_backoff_seconds * 2.0 ** min(attempt, _MAX_BACKOFF_DOUBLINGS),
        )
        return ceiling / 2 + self._rng.random() * ceiling / 2


class _RejectionReporter:
    """Counts every refused record and logs one line per record (without its content), up to
    MAX_REJECTION_LOG_LINES per push, then one summary line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.logged = 0
        self.unlogged: dict[str, int] = {}

    def report(self, record: LogRecord, reason: str, *, counter: Counter) -> None:
        counter.labels(source=self.source, reason=reason).inc()
        if self.logged >= MAX_REJECTION_LOG_LINES:
            self.unlogged[reason] = self.unlogged.get(reason, 0) + 1
            return
        self.logged += 1
        log.warning(
            "entry not shipped: source=%s reason=%s ts_ns=%d labels=%s metadata=%s",
            self.source, reason, record.ts_ns, _compact(record.labels), _compact(record.metadata),
            extra={"event": "entry_rejected", "source": self.source, "reason": reason,
                   "ts_ns": record.ts_ns, "labels": dict(record.labels), "metadata": dict(record.metadata)},
        )

    def finish(self) -> None:
        if self.unlogged:
            log.warning(
                "entries not shipped and not logged individually: source=%s %s", self.source, self.unlogged,
                extra={"event": "entries_rejected_summary", "source": self.source, "counts": self.unlogged},
            )


def _compact(values: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items())


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _BODY_SNIPPET_CHARS else text[:_BODY_SNIPPET_CHARS] + "…"


_ts_of = attrgetter("ts_ns")
_NOTHING_KNOWN = rejections.Verdict({}, False)
_line_bytes_of = attrgetter("line_bytes")
