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
