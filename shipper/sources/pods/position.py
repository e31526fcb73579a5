"""A container's cursor position: the newest shipped timestamp and how many lines had it, and the
mark (the last shipped line, as timestamp and its count among the lines of that timestamp) a read
resumes after; and the bounded counts per timestamp that set the mark."""

from __future__ import annotations

from typing import Any

from shipper.sources.pods.limits import PodLimits

MARK_KEYS = ("mark_ts", "mark_n")


def mark_of(position: dict[str, Any]) -> tuple[int, int] | None:
    if "mark_ts" not in position or "mark_n" not in position:
        return None
    return int(position["mark_ts"]), int(position["mark_n"])


def moved_position(
    position: dict[str, Any], ts_ns: int, at_ts: int, mark: tuple[int, int] | None
) -> dict[str, Any]:
    moved = {k: v for k, v in position.items() if k not in MARK_KEYS}
    moved.update(ts_ns=ts_ns, at_ts=at_ts)
    if mark is not None:
        moved.update(mark_ts=mark[0], mark_n=mark[1])
    return moved


class TimestampCounts:
    """How many lines of one read had each timestamp so far. Bounded: once more than
    `limits.tracked_timestamps` are held, counts more than the reorder slack below the newest timestamp are
    forgotten (and the next cleanup waits until the table has doubled, so a busy second costs no
    scan per line); a line at or below a forgotten timestamp gets no count."""

    def __init__(self, limits: PodLimits) -> None:
        self._tracked = limits.tracked_timestamps
        self._slack_ns = limits.reorder_slack_seconds * 1_000_000_000
        self._counts: dict[int, int] = {}
        self._newest = 0
        self._forgotten_up_to = -1
        self._cleanup_at = self._tracked

    def add(self, ts_ns: int) -> int | None:
        if ts_ns <= self._forgotten_up_to:
            return None
        count = self._counts[ts_ns] = self._counts.get(ts_ns, 0) + 1
        self._newest = max(self._newest, ts_ns)
        if len(self._counts) > self._cleanup_at:
            horizon = self._newest - self._slack_ns
            old = [ts for ts in self._counts if ts < horizon]
            for ts in old:
                del self._counts[ts]
            self._forgotten_up_to = max([self._forgotten_up_to, *old])
            self._cleanup_at = max(self._tracked, 2 * len(self._counts))
        return count


class ShippedBefore:
    """Which lines at the start of a read an earlier read shipped: up to the saved mark (the lines
    of its timestamp are counted to find it), or, without it, those before the saved position and
    the first `at_ts` at it. From the first new line on, every line is new."""

    def __init__(self, position: dict[str, Any]) -> None:
        self._mark = mark_of(position)
        self._saved_ts, self._saved_at_ts = int(position["ts_ns"]), int(position["at_ts"])
        self.read_from = self._mark[0] if self._mark is not None else self._saved_ts
        self.found_mark: tuple[int, int] | None = None
        self._at_mark_ts = 0  # lines with exactly the saved mark's timestamp: exact, to find the mark
        self._dropped_at_saved_ts = 0
        self._shipping = False

    def skips(self, line_ts: int) -> bool:
        if self._shipping:
            return False
        if self._mark is not None and line_ts == self._mark[0]:
            self._at_mark_ts += 1
            if self._at_mark_ts == self._mark[1]:
                self._shipping = True  # the last line shipped: the ones after it are new
                self.found_mark = self._mark
                return True
        if line_ts < self._saved_ts:
            return True
        if line_ts == self._saved_ts and self._dropped_at_saved_ts < self._saved_at_ts:
            self._dropped_at_saved_ts += 1
            return True
        self._shipping = True
        return False


class ReadProgress:
    """Where one read of a container's log has got to from its saved `position`: which lines are
    new, the newest timestamp read and how many lines had it, and the mark the next read resumes
    after."""

    def __init__(self, position: dict[str, Any], limits: PodLimits) -> None:
        self._saved = position
        self.shipped = ShippedBefore(position)
        self._counts = TimestampCounts(limits)
        self._ts_ns, self._at_ts = int(position["ts_ns"]), int(position["at_ts"])
        self._mark: tuple[int, int] | None = None

    def is_new(self, line_ts: int) -> bool:
        """Takes the next line of the read into account; False when an earlier read shipped it."""
        nth = self._counts.add(line_ts)
        if self.shipped.skips(line_ts):
            self._mark = self.shipped.found_mark  # the saved mark once found: the lines after it are new
            return False
        if line_ts > self._ts_ns:
            self._ts_ns, self._at_ts = line_ts, 1
        elif line_ts == self._ts_ns:
            self._at_ts += 1
        if nth is not None:  # else the last line that has a count stays the mark:
            self._mark = (line_ts, nth)  # what follows it is sent again, Loki drops repeats
        return True

    def position(self) -> dict[str, Any]:
        """The saved position moved past the new lines taken so far."""
        return moved_position(self._saved, self._ts_ns, self._at_ts, self._mark)
