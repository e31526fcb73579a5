"""The Sink protocol: where records go after a source produced them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from shipper.models import LogRecord


class SinkUnavailable(Exception):
    """Pushing failed after the bounded retry time; nothing after the last ack may be committed."""


@dataclass(slots=True)
class RejectedEntry:
    record: LogRecord
    reason: str  # bounded vocabulary, e.g. too_far_behind, too_old, invalid_labels, line_too_long, other


@dataclass(slots=True)
class PushResult:
    """Every record given to push() is either accepted or listed in rejected (never lost)."""

    accepted: int = 0
    accepted_bytes: int = 0
    rejected: list[RejectedEntry] = field(default_factory=list)


class Sink(Protocol):
    def push(self, records: Sequence[LogRecord], *, source: str) -> PushResult:
        """Send all records (split into requests as needed) and return only when every one was
        acknowledged or definitively rejected; raise SinkUnavailable otherwise. `source` is the
        source id, used for metrics and log lines."""
        ...


@runtime_checkable
class PreparingSink(Protocol):
    """A sink whose push() splits in two: the CPU part, which a caller may run ahead on another
    thread while the previous push is in flight, and the sending (LokiSink)."""

    def prepare_push(self, records: Sequence[LogRecord], *, source: str) -> Any:
        """Everything push() does before its first request that does not depend on earlier pushes' answers."""
        ...

    def push_prepared(self, prepared: Any, *, source: str) -> PushResult:
        """push() of what prepare_push() returned, with what earlier pushes' answers taught since."""
        ...
