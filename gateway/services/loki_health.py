"""Readiness and liveness as seen through the Loki client's own connection pool.

Readiness: one /ready probe at a time, its result shared by every caller for READY_REUSE_SECONDS,
so a flood of /health/ready calls costs Loki one request, not a thousand.

Liveness must not depend on Loki being up, but must notice a gateway that can no longer reach a
healthy Loki through its pool (issue 21: a pool full of leaked connections answered 504 for ever
while Loki answered /ready in under a millisecond). When no Loki answer came through the pool for
LIVENESS_RECENT_SECONDS, a background check asks Loki's /ready through the pool; when that fails,
it asks again over a fresh connection. Only "the pool fails where a fresh connection gets an
answer", in STUCK_CHECKS_IN_A_ROW checks in a row (one can be an overloaded Loki's bad luck),
marks the process stuck. /health itself never waits on Loki: it answers from the latest
finished check and starts the next one when that is stale."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import httpx

from gateway.services.bounded_http import request_within
from gateway.services.loki import LokiClient
from gateway.services.upstreams import ProbeResult, probe

log = logging.getLogger(__name__)

READY_REUSE_SECONDS = 1.0
LIVENESS_RECENT_SECONDS = 10.0
LIVENESS_CHECK_EVERY_SECONDS = 5.0
STUCK_CHECKS_IN_A_ROW = 2

T = TypeVar("T")


class SharedResult(Generic[T]):
    """`compute()` run by one caller at a time; concurrent callers await the same run, and a
    finished result is reused for `reuse_seconds`. A cancelled caller does not cancel the run."""

    def __init__(
        self, compute: Callable[[], Awaitable[T]], reuse_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self._reuse = reuse_seconds
        self._clock = clock
        self._latest: tuple[float, T] | None = None
        self._running: asyncio.Task[T] | None = None

    @property
    def latest(self) -> T | None:
        return None if self._latest is None else self._latest[1]

    def fresh(self) -> bool:
        return self._latest is not None and self._clock() - self._latest[0] < self._reuse

    async def get(self) -> T:
        if self._latest is not None and self.fresh():
            return self._latest[1]
        return await asyncio.shield(self.start())

    async def close(self) -> None:
        if self._running is not None:
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._running

    def start(self) -> asyncio.Task[T]:
        """The running computation, started now when none runs."""
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
        return self._running

    async def _run(self) -> T:
        try:
            value = await self._compute()
            self._latest = (self._clock(), value)
            return value
        finally:
            self._running = None


class LokiHealth:
    def __init__(self, loki: LokiClient, probe_timeout_seconds: float) -> None:
        self._loki = loki
        self._timeout = probe_timeout_seconds
        self._ready = SharedResult(self._probe_ready, READY_REUSE_SECONDS)
        self._stuck = SharedResult(self._pool_stuck_now, LIVENESS_CHECK_EVERY_SECONDS)
        self._stuck_in_a_row = 0

    async def ready(self) -> ProbeResult:
        return await self._ready.get()

    def pool_stuck(self) -> bool:
        """The latest verdict, without waiting; starts a new check when that one is stale and
        Loki has not answered through the pool recently."""
        answered = self._loki.last_answer_at
        if answered is not None and time.monotonic() - answered < LIVENESS_RECENT_SECONDS:
            return False
        if not self._stuck.fresh():
            self._stuck.start()
        return bool(self._stuck.latest)

    async def check_now(self) -> bool:
        """Run (or join) a liveness check and return its verdict: for tests and startup."""
        return await asyncio.shield(self._stuck.start())

    async def close(self) -> None:
        await self._ready.close()
        await self._stuck.close()

    async def _probe_ready(self) -> ProbeResult:
        result = await probe(self._loki.http, "loki", self._loki.ready_url, self._timeout)
        if result.http_status is not None:
            self._loki.last_answer_at = time.monotonic()
        return result

    async def _pool_stuck_now(self) -> bool:
        try:
            failed = await self._pool_fails_where_fresh_answers()
        except Exception as exc:  # a check that could not run is no verdict
            log.warning("the Loki liveness check failed to run: %s", type(exc).__name__)
            failed = False
        self._stuck_in_a_row = self._stuck_in_a_row + 1 if failed else 0
        stuck = self._stuck_in_a_row >= STUCK_CHECKS_IN_A_ROW
        if stuck:
            log.error(
                "Loki answers over a fresh connection but not through the gateway's connection pool; "
                "liveness (/health) now fails so that the process is restarted"
            )
        return stuck

    async def _pool_fails_where_fresh_answers(self) -> bool:
        if await _answers(self._loki.http, self._loki.ready_url, self._timeout):
            self._loki.last_answer_at = time.monotonic()
            return False
        async with httpx.AsyncClient(follow_redirects=False) as fresh:
            return await _answers(fresh, self._loki.ready_url, self._timeout)


async def _answers(http: httpx.AsyncClient, url: str, timeout: float) -> bool:
    """Any HTTP answer at all (a 503 while Loki starts is an answer too)."""
    try:
        await request_within(http, "GET", url, timeout)
    except httpx.HTTPError:
        return False
    return True
