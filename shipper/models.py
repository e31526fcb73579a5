"""The only types passed between shipper modules: records, batches and cursors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A source's position, JSON-serialisable; its shape is private to the source that made it.
Cursor = dict[str, Any]

LEVELS = ("debug", "info", "warn", "error", "critical", "unknown")


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
