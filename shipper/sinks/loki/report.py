"""Reporting the records Loki will not get: counted by reason, logged one line each (labels and
metadata, never the line) up to a bound per push, then summarized."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prometheus_client import Counter

from shipper.models import LogRecord

log = logging.getLogger("shipper.sinks.loki.client")  # the sink's logger name from before the split

MAX_REJECTION_LOG_LINES = 100  # per push() call; the rest is summarized in one line


class RejectionReporter:
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
