"""The only types passed between shipper modules: records, batches and cursors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A source's position, JSON-serialisable; its shape is private to the source that made it.
Cursor = dict[str, Any]

LEVELS = ("debug", "info", "warn", "error", "critical", "unknown")

# What is pushed between two commits spans less than Loki's out-of-order window (1 h): a resend
# after a crash then takes the same streams as the first send. An entry Loki stored in its live
# stream is sent there again (a duplicate Loki drops) - not refused as too far behind because of
# newer entries of the same lost push, and sent to a late stream besides. Sources cut their
# batches at this span, the pipeline its pushes.
MAX_UNCOMMITTED_SPAN_NS = 50 * 60 * 1_000_000_000


@dataclass(slots=True)
class LogRecord:
    """One log entry: timestamp from the record itself (ns since epoch), the line, stream labels
    (few, bounded) and structured metadata (high-cardinality values)."""

    ts_ns: int
    line: str
    labels: dict[str, str]
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Batch:
    """Records a source read, and the cursor that is safe to commit once Loki acknowledged
    every record of this batch and of all batches before it."""

    records: list[LogRecord]
    cursor: Cursor


@dataclass(slots=True)
class Outcome:
    """A counted, labelled thing that happened to a record other than plain shipping
    (truncated, clamped, parse_error, too_old, binary_skipped, rejected:<reason> ...)."""

    source: str
    reason: str
    count: int = 1
    detail: str = ""
