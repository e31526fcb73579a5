"""Where one page of log entries ends and the next begins, for every reader that walks Loki's
answers in pages: the REST/MCP cursor pages (`pagination.cut_page`), their fast path over Loki's
raw answer, and `LokiClient.iter_lines`.

A page ends at some timestamp, and more entries may share it. The next page starts *at* that
timestamp (Loki's start is inclusive) and skips exactly the entries already returned at it, so a
walk returns every entry once even when more entries share one timestamp than fit a page. A
`Boundary` is that timestamp and the identities of those entries; one identity for all readers:
the stream's `label_key` and the line, as a short digest where it travels in a cursor."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

ENTRY_DIGEST_BYTES = 5  # collisions among entries sharing one timestamp: ~n^2 / 2^41

Id = TypeVar("Id", bytes, str)
# an entry as the readers hold it: (ts_ns, labels, line, ...)
E = TypeVar("E", bound=tuple[int, Mapping[str, str], str, Any])


def label_key(labels: Mapping[str, str]) -> str:
    """One text for a stream's label set, whatever the order of its labels: its identity, and the
    tie-breaker that orders entries sharing a timestamp."""
    return "\x00".join(f"{k}={v}" for k, v in sorted(labels.items()))


def entry_key(labels: Mapping[str, str], line: str) -> str:
    """An entry's identity among those sharing its timestamp: its stream and its line."""
    return label_key(labels) + "\x01" + line


def entry_digest(labels: Mapping[str, str], line: str) -> bytes:
    """`entry_key` in ENTRY_DIGEST_BYTES, short enough for thousands of them in one cursor."""
    return hashlib.blake2b(entry_key(labels, line).encode(), digest_size=ENTRY_DIGEST_BYTES).digest()


@dataclass(frozen=True)
class Boundary(Generic[Id]):
    """The timestamp the entries returned so far end at, the identities of those returned at it,
    and how an entry's identity is made (`entry_digest` for cursors, `entry_key` in memory)."""

    ts_ns: int
    seen: frozenset[Id]
    identify: Callable[[Mapping[str, str], str], Id]

    def holds(self, labels: Mapping[str, str], line: str) -> bool:
        """Whether this entry, if it is at the boundary's timestamp, was returned already."""
        return self.identify(labels, line) in self.seen

    def returned(self, ts_ns: int, labels: Mapping[str, str], line: str) -> bool:
        return ts_ns == self.ts_ns and self.holds(labels, line)

    def skip_returned(self, entries: Iterable[E]) -> Iterator[E]:
        """`entries` without those returned already."""
        for entry in entries:
            if entry[0] == self.ts_ns and self.holds(entry[1], entry[2]):
                continue
            yield entry

    def after(self, ts_ns: int, returned_there: Iterable[tuple[Mapping[str, str], str]]) -> Boundary[Id]:
        """The boundary once a page ending at `ts_ns` has returned `returned_there` (labels, line)
        at that timestamp: the pages before it that ended there returned theirs too."""
        seen = frozenset(self.identify(labels, line) for labels, line in returned_there)
        if ts_ns == self.ts_ns:
            seen |= self.seen
        return Boundary(ts_ns, seen, self.identify)


def first_boundary(identify: Callable[[Mapping[str, str], str], Id]) -> Boundary[Id]:
    """The boundary before the first page: nothing returned, so nothing to skip."""
    return Boundary(-1, frozenset(), identify)  # -1: before every timestamp Loki can hold
