"""Scheduled digests: every N minutes, per source, a summary of the last N minutes is pushed
into Loki as {source="gateway", kind="summary"} so Grafana and agents can read past digests.

Windows are aligned to multiples of N minutes, so every gateway replica summarizes the same
window; with REDIS_URL the replicas claim each window (SET NX) and only the winner writes it.
Without Redis every replica writes its own digest: enable digests on one replica only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from gateway.services.events import EventWriter
from gateway.services.summarize import SummaryQuery, selector_from_labels

log = logging.getLogger(__name__)

DIGEST_SOURCES = ("gcs", "firestore", "pod")
DIGEST_TOP_TEMPLATES = 5
DIGEST_MAX_LINES = 20_000

Summarize = Callable[[SummaryQuery], Awaitable[dict[str, Any]]]
# window end (ns) -> True when this replica is the one to write that window's digests
Claim = Callable[[int], Awaitable[bool]]
START_DELAY_SECONDS = 5.0  # after a window ends, so late-arriving lines are in Loki


async def claim_always(window_end_ns: int) -> bool:
    return True


def redis_claim(client: Any, interval_ns: int) -> Claim:
    """First replica to SET the window's key wins; a failing Redis fails open (a duplicate
    digest is better than none)."""
    ttl_ms = 2 * interval_ns // 1_000_000

    async def claim(window_end_ns: int) -> bool:
        try:
            return bool(await client.set(f"gateway:digest:{window_end_ns}", "1", nx=True, px=ttl_ms))
        except RedisError as exc:
            log.warning("digest claim in Redis failed (%s); writing this window", type(exc).__name__)
            return True

    return claim


class DigestScheduler:
    def __init__(
        self,
        summarize: Summarize,
        events: EventWriter,
        *,
        interval_minutes: int,
        sources: tuple[str, ...] = DIGEST_SOURCES,
        max_lines: int = DIGEST_MAX_LINES,
        prompt_max_bytes: int = 12_000,
        clock_ns: Callable[[], int] = time.time_ns,
        claim: Claim = claim_always,
    ) -> None:
        if interval_minutes < 1:
            raise ValueError("interval_minutes must be >= 1")
        self._summarize = summarize
        self._events = events
        self._interval_ns = interval_minutes * 60 * 1_000_000_000
        self._sources = sources
        self._max_lines = max_lines
        self._prompt_max_bytes = prompt_max_bytes
        self._clock_ns = clock_ns
        self._claim = claim
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """One digest per source for the window that ended last; returns how many were written
        to Loki (0 when another replica claimed the window)."""
        end_ns = self.window_end_ns()
        if not await self._claim(end_ns):
            return 0
        written = 0
        for source in self._sources:
            query = SummaryQuery(
                query=selector_from_labels({"source": source}) or "",
                start_ns=end_ns - self._interval_ns,
                end_ns=end_ns,
                max_lines=self._max_lines,
                prompt_max_bytes=self._prompt_max_bytes,
            )
            try:
                answer = await self._summarize(query)
            except Exception as exc:  # one source failing must not stop the others
                log.warning("digest for source %s failed: %s", source, type(exc).__name__)
                continue
            if answer["lines_read"] == 0:
                continue
            fields = {
                "digest_source": source,
                "window": answer["window"],
                "lines_read": answer["lines_read"],
                "truncated": answer["truncated"],
                "model": answer["model"],
                "summary": answer["summary"],
                "top_templates": [
                    {k: row[k] for k in ("id", "template", "count", "change", "levels")}
                    for row in answer["evidence"][:DIGEST_TOP_TEMPLATES]
                ],
            }
            written += await self._events.write("summary", "info", fields)
        return written

    def window_end_ns(self) -> int:
        return self._clock_ns() // self._interval_ns * self._interval_ns

    async def _loop(self) -> None:
        while True:
            next_end_ns = self.window_end_ns() + self._interval_ns
            await asyncio.sleep((next_end_ns - self._clock_ns()) / 1_000_000_000 + START_DELAY_SECONDS)
            try:
                await self.run_once()
            except Exception:  # one bad round must not end the schedule for good
                log.exception("summary digest round failed")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="summary-digest")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
