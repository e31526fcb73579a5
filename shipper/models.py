"""The only types passed between shipper modules: records, batches and cursors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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
    metadata: Mapping[str, str] = field(default_factory=dict)


LINE_NO = "line_no"


@dataclass(frozen=True, slots=True, eq=False)  # eq=False: hashed by identity, a cache key in the sink
class SharedMetadata:
    """The structured metadata every line of one object shares (its name and generation)."""

    pairs: dict[str, str]
    names: tuple[str, ...] = field(init=False)  # the names of a LineMetadata made with it
    values_size: int = field(init=False)  # characters of the shared values

    def __post_init__(self) -> None:
        if LINE_NO in self.pairs:
            raise ValueError(f"{LINE_NO} is each line's own")
        object.__setattr__(self, "names", (*self.pairs, LINE_NO))
        object.__setattr__(self, "values_size", sum(map(len, self.pairs.values())))


class LineMetadata(Mapping[str, str]):
    """One line's structured metadata, read as the mapping {**shared.pairs, "line_no": line_no}.
    The sink sizes and encodes the shared pairs once per object (prepare.py, wire.py) instead of
    once per line: for a GCS line they were half of the encoding's instructions."""

    __slots__ = ("line_no", "shared")

    def __init__(self, shared: SharedMetadata, line_no: str) -> None:
        self.shared = shared
        self.line_no = line_no

    def __getitem__(self, name: str) -> str:
        return self.line_no if name == LINE_NO else self.shared.pairs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.shared.names)

    def __len__(self) -> int:
        return len(self.shared.names)

    def __repr__(self) -> str:
        return repr(dict(self))


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
