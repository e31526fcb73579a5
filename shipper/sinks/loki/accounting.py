"""The accounting of one push: every record given is acknowledged or rejected in its PushResult,
and counted.

- A 400 is a partial success: the body is read for the refused entries (rejections.py), those are
  returned in PushResult.rejected. When the answer accounts for every entry (the ingester's
  `total ignored: N out of M` for the whole stream, or validation messages matching their count)
  the rest is acknowledged as stored; otherwise the rest is sent again (Loki drops exact
  duplicates). When nothing in the body can be matched the batch is bisected.
- Entries of a live stream refused as too far behind go to their late stream and are sent again;
  late entries Loki holds already are acknowledged without sending (held.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter

from shipper import metrics
from shipper.models import LogRecord
from shipper.sinks import PushResult, RejectedEntry, SinkUnavailable
from shipper.sinks.loki import rejections
from shipper.sinks.loki.encode import Entry
from shipper.sinks.loki.held import Holdings
from shipper.sinks.loki.late import LATE_STREAM, LateRouter
from shipper.sinks.loki.report import RejectionReporter
from shipper.sinks.loki.transport import Answer, snippet

MAX_PARTIAL_ROUNDS = 20  # 400 answers read per batch before falling back to bisection only
_NOTHING_KNOWN = rejections.Verdict({}, False)
_line_bytes_of = attrgetter("line_bytes")


class PushAccount:
    """One push of `records`: its batches sent through `send`, Loki's answers read into `result`."""

    def __init__(
        self,
        send: Callable[[list[Entry]], Answer],
        late: LateRouter,
        holdings: Holdings,
        records: Sequence[LogRecord],
        source: str,
    ) -> None:
        self.result = PushResult()
        self._send = send
        self._late = late
        self._holdings = holdings
        self._records = records
        self._source = source
        self._reporter = RejectionReporter(source)

    def adjusted(self, late: int, adjusted: Mapping[str, int]) -> None:
        """Count the records changed before sending: `late` routed to a late stream, `adjusted`
        per reason."""
        if late:
            metrics.RECORDS_ADJUSTED.labels(source=self._source, reason=LATE_STREAM).inc(late)
        for reason, count in adjusted.items():
            metrics.RECORDS_ADJUSTED.labels(source=self._source, reason=reason).inc(count)

    def too_old(self, indexes: list[int]) -> None:
        """The records older than max_age_hours, skipped without sending."""
        for index in indexes:
            record = self._records[index]
            self.result.rejected.append(RejectedEntry(record, rejections.TOO_OLD))
            self._reporter.report(record, rejections.TOO_OLD, counter=metrics.RECORDS_SKIPPED)

    def finish(self) -> PushResult:
        self._reporter.finish()
        return self.result

    def not_held(self, entries: list[Entry]) -> list[Entry]:
        """The late entries Loki does not hold yet; those it holds are acknowledged unsent."""
        if not entries:
            return entries
        missing, held = self._holdings.split_late(entries, self._source)
        if held:
            self._acknowledge(held)
        return missing

    def push_batch(self, batch: list[Entry]) -> None:
        """Send one batch until each of its entries is acknowledged or rejected."""
        work = [batch]
        partial_rounds = 0
        while work:
            pending = work.pop()
            answer = self._send(pending)
            if answer.status < 300:
                self._acknowledge(pending)
                continue
            if answer.status == 400 and rejections.is_request_error(answer.body):
                metrics.PUSH_FAILURES.inc()
                raise SinkUnavailable(f"Loki could not read our push request: {snippet(answer.body)}")
            verdict = _NOTHING_KNOWN
            if answer.status == 400 and partial_rounds < MAX_PARTIAL_ROUNDS:
                verdict = rejections.read_refusal(answer.body, pending)
                partial_rounds += 1
            if verdict.refused:
                work.extend(self._after_refusal(pending, verdict))
            elif len(pending) > 1:
                middle = len(pending) // 2
                work.append(pending[middle:])
                work.append(pending[:middle])  # popped first: older half first
            else:
                too_large = answer.status == 413
                reason = rejections.LINE_TOO_LONG if too_large else rejections.classify(answer.body)
                self._reject(self._records[pending[0].index], reason)

    def _after_refusal(self, pending: list[Entry], verdict: rejections.Verdict) -> list[list[Entry]]:
        """Account for what a 400 refused; return what is left to send, as requests."""
        refused = dict(verdict.refused)
        rest = [entry for entry in pending if entry.index not in refused]
        moved = self._late_again(pending, refused)  # too far behind: to the late stream
        for index, reason in refused.items():
            self._reject(self._records[index], reason)
        if verdict.settled:
            # Loki's answer accounts for every entry of the push (`total ignored: N out of
            # M` with M all we sent): the rest is stored, and a resend would only store it
            # again in another chunk. A count that is only N can hide what the distributor
            # dropped before the ingester (structured metadata too large, say).
            self._acknowledge(rest)
            rest = []
        self._late.route(rest)  # entries the answer showed to be too far behind too
        rest, now_late = self._late.split(rest)
        now_late = self.not_held([*now_late, *moved])
        return self._late.requests([*rest, *now_late])

    def _late_again(self, pending: list[Entry], refused: dict[int, str]) -> list[Entry]:
        """Entries of a live stream refused as too far behind, moved to their late stream (and
        taken out of `refused`): they are sent again, not lost."""
        moved = []
        for entry in pending:
            if refused.get(entry.index) == rejections.TOO_FAR_BEHIND and not self._late.is_late(entry.stream):
                del refused[entry.index]
                self._late.refused_too_far_behind(entry)
                moved.append(entry)
        if moved:
            metrics.RECORDS_ADJUSTED.labels(source=self._source, reason=LATE_STREAM).inc(len(moved))
        return moved

    def _acknowledge(self, entries: list[Entry]) -> None:
        self._late.acknowledged(entries)
        line_bytes = sum(map(_line_bytes_of, entries))
        self.result.accepted += len(entries)
        self.result.accepted_bytes += line_bytes
        metrics.LINES_SHIPPED.labels(source=self._source).inc(len(entries))
        metrics.BYTES_SHIPPED.labels(source=self._source).inc(line_bytes)

    def _reject(self, record: LogRecord, reason: str) -> None:
        self.result.rejected.append(RejectedEntry(record, reason))
        self._reporter.report(record, reason, counter=metrics.ENTRIES_REJECTED)
