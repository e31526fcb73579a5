"""Run a pass's push-and-commit steps on one background thread, in the order they were given,
with a bounded number waiting or running, while the caller reads and builds the next batch.

One thread, so the steps never overlap: each push is answered and its checkpoint written before
the next push starts, exactly as when the caller did them itself (see pipeline.py for the commit
rule). The first step that raises ends the queue: the steps after it are dropped, never run, and
the error is raised to the caller at its next `submit` or at `finish`."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class PushQueue:
    def __init__(self, max_in_flight: int, *, name: str = "shipper-push") -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self._name = name
        self._changed = threading.Condition()
        self._steps: deque[Callable[[], None]] = deque()
        self._in_flight = 0  # waiting + running
        self._error: BaseException | None = None
        self._closing = False
        self._thread: threading.Thread | None = None

    def submit(self, step: Callable[[], None]) -> None:
        """Queue `step` after the ones before it; waits while `max_in_flight` are queued or
        running. Raises the error of a step that failed (then `step` is not queued)."""
        with self._changed:
            while self._in_flight >= self.max_in_flight and self._error is None:
                self._changed.wait()
            self._raise_error()
            if self._closing:
                raise RuntimeError("PushQueue is closed")
            self._steps.append(step)
            self._in_flight += 1
            self._changed.notify_all()
        if self._thread is None:
            # a daemon: a caller interrupted (Ctrl-C) does not wait for a push still retrying; the
            # process may end in the middle of a step, which the commit rule makes safe
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def finish(self) -> None:
        """Wait until every queued step ran; raise the error of the one that failed, if any."""
        self.close(wait=True)
        with self._changed:
            self._raise_error()

    def close(self, *, wait: bool) -> None:
        """Stop taking steps. `wait`: the queued steps still run (unless one fails) and this
        returns when they are done; else the queued ones are dropped and a running one is not
        waited for."""
        with self._changed:
            self._closing = True
            if not wait:
                self._in_flight -= len(self._steps)
                self._steps.clear()
            self._changed.notify_all()
        if wait and self._thread is not None:
            self._thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._steps and not self._closing:
                    self._changed.wait()
                if not self._steps:
                    return
                step = self._steps.popleft()
            try:
                step()
            except BaseException as exc:  # handed to the caller, which decides what it means
                with self._changed:
                    self._error = exc
                    self._steps.clear()
                    self._in_flight = 0
                    self._changed.notify_all()
                return
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()
