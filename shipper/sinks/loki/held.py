"""What Loki holds already: entries found by (timestamp, line) with bounded query_range calls, one
stream selector and time range at a time, paging forward.

Loki answers for old time ranges from its store only, so entries older than its ingester query
window (about 3 h) that were pushed moments ago are not seen until their chunks are flushed: those
are sent again. When Loki cannot answer, everything is sent (a duplicate at worst, never a loss).
"""

from __future__ import annotations

import logging
from operator import attrgetter

import httpx

from shipper.sinks.loki.encode import Entry
from shipper.sinks.loki.late import HOUR_NS, LateRouter
from shipper.sinks.loki.transport import Transport, snippet

log = logging.getLogger("shipper.sinks.loki.client")  # the sink's logger name from before the split

PRESENT_QUERY_LIMIT = 5000  # entries per query (Loki's default max_entries_limit_per_query)
MAX_PRESENT_QUERIES = 100  # per selector and time range: bounded by the push size in practice
_QUERY_FAILURES = (httpx.HTTPError, ValueError, KeyError, TypeError)
_ts_of = attrgetter("ts_ns")


class Holdings:
    """Asks one Loki which of some entries it holds already."""

    def __init__(self, transport: Transport, late: LateRouter) -> None:
        self._transport = transport
        self._late = late

    def present(self, entries: list[Entry], source: str) -> set[int] | None:
        """The indexes of the entries Loki holds, per stream (its late streams included, which
        carry the same labels and one more); None when Loki could not answer."""
        by_stream: dict[str, list[Entry]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream.label_string, []).append(entry)
        present: set[int] = set()
        for selector, group in by_stream.items():
            try:
                held = self._held(selector, min(map(_ts_of, group)), max(map(_ts_of, group)))
            except _QUERY_FAILURES as exc:
                log.warning("could not ask Loki what it holds before a resend (%s); sending all",
                            snippet(str(exc)), extra={"event": "loki_resend_check_failed", "source": source})
                return None
            present.update(entry.index for entry in group if (entry.ts_ns, entry.line) in held)
        return present

    def split_late(self, entries: list[Entry], source: str) -> tuple[list[Entry], list[Entry]]:
        """(late entries Loki does not hold yet, those it holds). An entry goes late because its
        live stream holds something more than an hour newer; often it is history shipped before -
        a backfill, an object rewritten and read again, a resend - which the live stream already
        holds, and sending it to its late stream would store it twice. So Loki is asked first, per
        live stream (its selector also matches the late streams) and hour. When Loki cannot
        answer, every entry is taken as not held."""
        groups: dict[tuple[str, int], list[Entry]] = {}
        for entry in entries:
            key = (self._late.live_of(entry.stream).label_string, entry.ts_ns // HOUR_NS)
            groups.setdefault(key, []).append(entry)
        missing: list[Entry] = []
        held_entries: list[Entry] = []
        for (selector, _), group in groups.items():
            try:
                held = self._held(selector, min(map(_ts_of, group)), max(map(_ts_of, group)))
            except _QUERY_FAILURES as exc:
                log.warning("could not ask Loki whether late entries are held already (%s); sending them",
                            snippet(str(exc)), extra={"event": "loki_late_check_failed", "source": source})
                return entries, []
            for entry in group:
                (held_entries if (entry.ts_ns, entry.line) in held else missing).append(entry)
        if held_entries:
            log.info("%d of %d late entries already in Loki, not sent again", len(held_entries), len(entries),
                     extra={"event": "loki_late_held", "source": source, "held": len(held_entries)})
        return missing, held_entries

    def _held(self, selector: str, start_ns: int, end_ns: int) -> set[tuple[int, str]]:
        """(ts, line) of every entry Loki returns for `selector` in [start, end], paging forward."""
        held: set[tuple[int, str]] = set()
        cursor = start_ns
        for _ in range(MAX_PRESENT_QUERIES):
            response = self._transport.query_range(
                {"query": selector, "start": cursor, "end": end_ns + 1, "limit": PRESENT_QUERY_LIMIT,
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
