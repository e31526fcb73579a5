"""Run a pass's pushes and commits on background threads while the caller reads and builds the
next batch: up to `senders` pushes under way at once, their results settled (accounted and
committed) strictly in the order they were given, with a bounded number waiting or running.

A step is a `send` (the push, which may take long) and a `settle` (its commit). Step N settles
only after step N-1 settled, whichever send finished first, so a checkpoint moves past a push
only once every push before it was answered and committed (see pipeline.py for the commit rule).
A step given `alone` is sent only once every step before it has settled (the pipeline uses it to
keep what is unsettled at once within a span of timestamps, and for pushes that must see what the
ones before them did). With one sender, each push is answered and committed before the next
starts.

The first step that raises ends the queue: the steps after it are dropped or, when already
sent, never settled (the ones before it still settle), and the error is raised to the caller at
its next `submit` or at `finish`."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class _Step:
    number: int
    send: Callable[[], Any]
    settle: Callable[[Any], None]
    alone: bool


class PushQueue:
    def __init__(self, max_in_flight: int, *, senders: int = 1, name: str = "shipper-push") -> None:
        if max_in_flight < 1 or senders < 1:
            raise ValueError("max_in_flight and senders must be at least 1")
        self.max_in_flight = max_in_flight
        self.senders = min(senders, max_in_flight)
        self._name = name
        self._changed = threading.Condition()
        self._steps: deque[_Step] = deque()
        self._submitted = 0  # steps numbered 0, 1, ... in the order given
        self._settled = -1  # number of the last step settled
        self._in_flight = 0  # given and neither settled nor dropped
        self._error: BaseException | None = None
        self._failed_at = -1  # number of the step that raised; -1: none
        self._closing = False
        self._threads: list[threading.Thread] = []

    def submit(self, send: Callable[[], Any], settle: Callable[[Any], None], *, alone: bool = False) -> None:
        """Queue a step after the ones before it: `settle(send())`, settled in order. Waits while
        `max_in_flight` are queued or running. Raises the error of a step that failed (then this
        one is not queued)."""
        with self._changed:
            while self._in_flight >= self.max_in_flight and self._error is None:
                self._changed.wait()
            self._raise_error()
            if self._closing:
                raise RuntimeError("PushQueue is closed")
            self._steps.append(_Step(self._submitted, send, settle, alone))
            self._submitted += 1
            self._in_flight += 1
            self._changed.notify_all()
        if not self._threads:
            # daemons: a caller interrupted (Ctrl-C) does not wait for a push still retrying; the
            # process may end in the middle of a step, which the commit rule makes safe
            self._threads = [threading.Thread(target=self._run, name=f"{self._name}-{index}", daemon=True)
                             for index in range(self.senders)]
            for thread in self._threads:
                thread.start()

    def finish(self) -> None:
        """Wait until every queued step ran; raise the error of the one that failed, if any."""
        self.close(wait=True)
        with self._changed:
            self._raise_error()

    def close(self, *, wait: bool) -> None:
        """Stop taking steps. `wait`: the queued steps still run (unless one fails) and this
        returns when they are done; else the queued ones are dropped and the ones under way are
        not waited for."""
        with self._changed:
            self._closing = True
            if not wait:
                self._in_flight -= len(self._steps)
                self._steps.clear()
            self._changed.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _sendable(self) -> bool:
        """The first queued step may be sent now."""
        return bool(self._steps) and (not self._steps[0].alone or self._settled == self._steps[0].number - 1)

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._error is None and not self._sendable() and (self._steps or not self._closing):
                    self._changed.wait()
                if self._error is not None or not self._steps:
                    return
                step = self._steps.popleft()
            try:
                sent = step.send()
            except BaseException as exc:  # handed to the caller, which decides what it means
                self._fail(step, exc)
                return
            with self._changed:
                while self._settled != step.number - 1 and not self._failed_before(step):
                    self._changed.wait()
                if self._failed_before(step):
                    return  # never settled: a step before it failed
            try:
                step.settle(sent)
            except BaseException as exc:
                self._fail(step, exc)
                return
            with self._changed:
                self._settled = step.number
                self._in_flight -= 1
                self._changed.notify_all()

    def _failed_before(self, step: _Step) -> bool:
        return 0 <= self._failed_at < step.number

    def _fail(self, step: _Step, exc: BaseException) -> None:
        with self._changed:
            if self._error is None or step.number < self._failed_at:
                self._error, self._failed_at = exc, step.number
            self._in_flight -= len(self._steps)
            self._steps.clear()
            self._changed.notify_all()
