"""LokiSink: push records to Loki's `/loki/api/v1/push`, with retries and partial-success handling.

- Batches by bytes and entries (`batch_max_bytes`, `batch_max_entries`); the wait-time part of
  batching belongs to the caller (the pipeline decides when to call push()).
- Every request goes through _send(): its HTTP side, with retries on 429, 5xx and network errors
  within `retry_max_total_seconds`, is transport.py.
- One request per live stream: Loki's answer to a push describes only the last stream of it (a
  push whose first stream was refused and whose last was fine is answered 204), see late.py.
  Entries Loki would refuse as too far behind go to their `late_hour` stream (late.py); late
  streams, which cannot be refused for that, share requests.
- A 400 is a partial success, read for what it refused (accounting.py); what Loki holds already
  is asked with held.py.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

import httpx

from shipper.config import ShipperSettings
from shipper.models import LogRecord
from shipper.records import gc_paused
from shipper.sinks import PushResult
from shipper.sinks.loki.accounting import PushAccount
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.encode import Encoder, Entry, group_streams
from shipper.sinks.loki.held import Holdings
from shipper.sinks.loki.late import HOUR_NS, LateRouter
from shipper.sinks.loki.prepare import Prepared, Preparer
from shipper.sinks.loki.transport import Answer, Transport

log = logging.getLogger(__name__)

_ts_of = attrgetter("ts_ns")
_size_of = attrgetter("size")


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
        self._now_ns = now_ns
        self._encoder = Encoder(config.push_format)
        self._transport = Transport(
            config, client, content_headers=self._encoder.headers, sleep=sleep, clock=clock,
            rng=rng or random.Random(),
        )
        max_age_ns = int(config.max_age_hours * HOUR_NS) if config.max_age_hours else None
        self._preparer = Preparer(max_line_bytes=config.max_line_bytes, max_age_ns=max_age_ns)
        self._late = LateRouter()
        self._holdings = Holdings(self._transport, self._late)

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
        The age limits use the time of this call. It may run on another thread than the pushes
        under way (and push_prepared() on several at once): the preparer's caches are dicts
        changed one item at a time (atomic under the GIL) and the late router takes a lock."""
        if not records:
            return PreparedPush(records, None, 0, [])
        with gc_paused():
            prepared = self._preparer.prepare(records, now_ns=self._now_ns())
            prepared.entries.sort(key=_ts_of)  # oldest first: no batch lands "too far behind" a later one
            late = self._late.route(prepared.entries)
            return PreparedPush(records, prepared, late, self._plan(prepared.entries, encode=True))

    def push_prepared(self, push: PreparedPush, *, source: str) -> PushResult:
        """Send what prepare_push() made: the second half of push()."""
        prepared = push.prepared
        if prepared is None:
            return PushResult()
        plan, late = push.plan, push.late
        moved = self._late.route(prepared.entries)  # pushes acknowledged since it was prepared
        if moved:
            late += moved
            plan = self._plan(prepared.entries, encode=False)
        account = PushAccount(self._send, self._late, self._holdings, push.records, source)
        account.adjusted(late, prepared.adjusted)
        account.too_old(prepared.too_old)
        for request in plan:
            if request.late:
                for batch in self._batches(account.not_held(request.entries)):
                    account.push_batch(batch)
            else:
                account.push_batch(request.entries)
        return account.finish()

    def drop_present(self, records: list[LogRecord], *, source: str) -> tuple[list[LogRecord], int]:
        """The records Loki does not hold yet, and how many it holds already (same labels -
        including their late streams -, timestamp and line), found with bounded queries (held.py).
        Used for the first resend after an unclean stop (pipeline.py). When Loki cannot answer,
        everything is sent."""
        if not records:
            return records, 0
        prepared = self._preparer.prepare(records, now_ns=self._now_ns())
        present = self._holdings.present(prepared.entries, source)
        if present is None:
            return records, 0
        if present:
            log.info("resend after an unclean stop: %d of %d records already in Loki, not sent again",
                     len(present), len(records),
                     extra={"event": "loki_resend_checked", "source": source, "present": len(present)})
        return [record for index, record in enumerate(records) if index not in present], len(present)

    def ready(self) -> str:
        """Describe Loki's readiness (GET /ready) or raise SinkUnavailable."""
        return self._transport.ready()

    # -- requests ----------------------------------------------------------------------------------

    def _plan(self, entries: list[Entry], *, encode: bool) -> list[_Request]:
        """The requests of a push, in sending order: each live stream alone, batched (and encoded
        with `encode`); the late streams together, batched when sent (what Loki holds already
        is taken out first, see PushAccount.not_held)."""
        plan = []
        for group in self._late.requests(entries):
            if self._late.is_late(group[0].stream):
                plan.append(_Request(group, late=True))
                continue
            for batch in self._batches(group):
                plan.append(_Request(_Encoded(batch, self._encode(batch)) if encode else batch))
        return plan

    def _batches(self, entries: list[Entry]) -> Iterator[list[Entry]]:
        max_bytes, max_entries = self.config.batch_max_bytes, self.config.batch_max_entries
        if 0 < len(entries) <= max_entries and sum(map(_size_of, entries)) <= max_bytes:
            yield entries  # the usual case: the pipeline sized the push to fit (summed in C)
            return
        start, size = 0, 0
        for position, entry in enumerate(entries):
            if position > start and (size + entry.size > max_bytes or position - start >= max_entries):
                yield entries[start:position]
                start, size = position, 0
            size += entry.size
        if start < len(entries):
            yield entries[start:]

    def _encode(self, entries: list[Entry]) -> bytes:
        with gc_paused():
            return self._encoder.encode(group_streams(entries, in_ts_order=True))

    def _send(self, entries: list[Entry]) -> Answer:
        """POST the entries (encoded already when prepare_push made them an _Encoded); return
        2xx/400/413 answers, retry the retryable, raise on the rest."""
        body = entries.body if isinstance(entries, _Encoded) else self._encode(entries)
        return self._transport.push(body)
