"""Late entries: a stream that can take what the live stream would refuse.

Loki refuses an entry more than 1 h (`max_chunk_age / 2`) older than the newest entry it holds for
the *same stream* (`entry too far behind`), and no later resend would ever get it in. History read
out of order (an older object uploaded after newer ones, a Firestore document written late) would
be lost. Such an entry goes instead to the same labels plus `late_hour="<its UTC hour>"`
(e.g. `2026-12-02T13`): entries inside one aligned hour are never an hour behind each other, so
that stream takes every entry routed to it, and selectors without `late_hour` still match it
(`{source="gcs", prefix="trades"}` returns both). The label is bounded: one value per hour of
Loki's accepted age (168 with the default 7 days) and only for hours that really had late data.

Which stream an entry takes is decided by what Loki is known to hold for the live stream:
- newest acknowledged: after Loki accepted an entry at T into the live stream, an entry older
  than T - 1 h is sent to its late stream at once (Loki would refuse it);
- refused: an entry Loki names as too far behind (a 400) is sent again to its late stream, and
  the newest of the live stream is learnt from it.
The live stream's newest only grows, so a resend of an entry Loki refused takes the late stream
again (Loki then drops it as a duplicate); a resend after an unclean stop is checked against Loki
first (see LokiSink.drop_present), so an entry that moved between streams is not stored twice.

Several pushes may be under way at once (pipeline.py): what changes these tables holds a lock;
lookups read dicts that change one item at a time. A late stream knows its live stream
(`StreamLabels.live`), so forgetting the tables (at _MAX_STREAMS) never makes a late entry pass
for a live one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from operator import attrgetter

from shipper.sinks.loki.encode import Entry, StreamLabels, one_stream

LATE_LABEL = "late_hour"
LATE_STREAM = "late_stream"  # shipper_records_adjusted{reason}: entries sent to a late stream
OUT_OF_ORDER_WINDOW_NS = 3600 * 1_000_000_000  # Loki's max_chunk_age (2 h) / 2
HOUR_NS = 3600 * 1_000_000_000
_MAX_STREAMS = 50_000  # streams remembered; forgetting one only costs a refused push
_ts_of = attrgetter("ts_ns")


def hour_value(ts_ns: int) -> str:
    """The `late_hour` value of an entry: its UTC hour, `YYYY-MM-DDTHH`."""
    return datetime.fromtimestamp(ts_ns // HOUR_NS * 3600, UTC).strftime("%Y-%m-%dT%H")


class LateRouter:
    """Per live stream, the newest timestamp Loki is known to hold; routes entries it would refuse."""

    def __init__(self, window_ns: int = OUT_OF_ORDER_WINDOW_NS) -> None:
        self.window_ns = window_ns
        self._newest: dict[str, int] = {}  # live stream label string -> newest ts held by Loki
        self._newest_of_all = -1  # at least every value of _newest: route()'s quick answer
        self._late: dict[tuple[str, str], StreamLabels] = {}  # (live stream, hour) -> late stream
        self._lock = threading.Lock()

    def is_late(self, stream: StreamLabels) -> bool:
        return stream.live is not None

    def live_of(self, stream: StreamLabels) -> StreamLabels:
        return stream.live or stream

    def requests(self, entries: Sequence[Entry]) -> list[list[Entry]]:
        """Entries grouped into what may share a push request: each live stream alone, all late
        streams together. Loki 3.7 answers a push with the outcome of the *last* stream it
        stored (the ingester's error of an earlier stream is overwritten): a request holding
        several live streams can answer 204 while entries of one of them were refused as too
        far behind, and they would be lost unseen. A late stream is never refused for that, so
        late streams can share a request. Order inside each group is kept."""
        if one_stream(entries) is not None:
            return [list(entries)]
        groups: dict[str, list[Entry]] = {}
        for entry in entries:
            stream = entry.stream
            key = "" if stream.live is not None else stream.label_string
            group = groups.get(key)
            if group is None:
                groups[key] = [entry]
            else:
                group.append(entry)
        return list(groups.values())

    def split(self, entries: Iterable[Entry]) -> tuple[list[Entry], list[Entry]]:
        """(entries of live streams, entries of late streams)."""
        live: list[Entry] = []
        late: list[Entry] = []
        for entry in entries:
            (late if entry.stream.live is not None else live).append(entry)
        return live, late

    def route(self, entries: Sequence[Entry]) -> int:
        """Moves entries the live stream would refuse to their late stream; returns how many."""
        newest, window_ns = self._newest, self.window_ns
        if not entries or min(map(_ts_of, entries)) >= self._newest_of_all - window_ns:
            return 0  # the usual case, history read in order: no stream holds anything that much newer
        moved = 0
        with self._lock:
            for entry in entries:
                known = newest.get(entry.stream.label_string)
                if known is not None and entry.ts_ns < known - window_ns:
                    self._move_late(entry)
                    moved += 1
        return moved

    def _move_late(self, entry: Entry) -> None:
        live = entry.stream
        hour = hour_value(entry.ts_ns)
        key = (live.label_string, hour)
        late = self._late.get(key)
        if late is None:
            if len(self._late) >= _MAX_STREAMS:
                self._late.clear()
            late = StreamLabels({**live.labels, LATE_LABEL: hour}, live.moved, live=live)
            self._late[key] = late
        entry.stream = late

    def acknowledged(self, entries: Iterable[Entry]) -> None:
        newest = self._newest
        with self._lock:
            for entry in entries:
                if entry.stream.live is not None:
                    continue
                name = entry.stream.label_string
                if entry.ts_ns > newest.get(name, -1):
                    if name not in newest and len(newest) >= _MAX_STREAMS:
                        newest.clear()
                    newest[name] = entry.ts_ns
                    if entry.ts_ns > self._newest_of_all:
                        self._newest_of_all = entry.ts_ns

    def refused_too_far_behind(self, entry: Entry) -> None:
        """Loki holds something newer than the entry by more than the window."""
        name = entry.stream.label_string
        floor = entry.ts_ns + self.window_ns + 1
        with self._lock:
            if floor > self._newest.get(name, -1):
                self._newest[name] = floor
                self._newest_of_all = max(self._newest_of_all, floor)
            self._move_late(entry)
