"""PushQueue: sends run side by side (up to `senders`), settles run one at a time in the order the
steps were given; `alone` waits for everything before it; the first failure ends the queue
without settling anything after it."""

from __future__ import annotations

import threading
import time

import pytest

from shipper.push_queue import PushQueue

WAIT = 10.0


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.sending = 0
        self.most_sending = 0

    def add(self, what: str, number: int) -> None:
        with self.lock:
            self.events.append((what, number))

    def send(self, number: int, *, wait_for: threading.Event | None = None, fail: bool = False,
             started: threading.Event | None = None) -> int:
        with self.lock:
            self.sending += 1
            self.most_sending = max(self.most_sending, self.sending)
        self.add("send", number)
        if started is not None:
            started.set()
        if wait_for is not None:
            wait_for.wait(WAIT)
        with self.lock:
            self.sending -= 1
        if fail:
            raise RuntimeError(f"send {number} failed")
        self.add("sent", number)
        return number

    def settle(self, number: int) -> None:
        self.add("settle", number)


def index(events: list[tuple[str, int]], event: tuple[str, int]) -> int:
    return events.index(event)


def test_steps_settle_in_the_order_given_when_a_later_send_finishes_first() -> None:
    log, first_started, second_answered = Log(), threading.Event(), threading.Event()

    def second() -> int:
        assert first_started.wait(WAIT)  # both under way at once
        number = log.send(1)
        second_answered.set()
        return number

    queue = PushQueue(4, senders=2)
    queue.submit(lambda: log.send(0, started=first_started, wait_for=second_answered), log.settle)
    queue.submit(second, log.settle)
    queue.finish()
    events = log.events
    assert index(events, ("sent", 1)) < index(events, ("sent", 0))  # the second answered first
    assert [number for what, number in events if what == "settle"] == [0, 1]
    assert index(events, ("sent", 0)) < index(events, ("settle", 0)) < index(events, ("settle", 1))
    assert log.most_sending == 2


def test_no_more_than_senders_are_sent_at_once() -> None:
    log = Log()
    queue = PushQueue(8, senders=3)
    for number in range(30):
        queue.submit(lambda number=number: (time.sleep(0.002), log.send(number))[1], log.settle)
    queue.finish()
    assert [number for what, number in log.events if what == "settle"] == list(range(30))
    assert 1 <= log.most_sending <= 3


def test_one_sender_sends_each_step_after_the_one_before_settled() -> None:
    log = Log()
    queue = PushQueue(3, senders=1)
    for number in range(5):
        queue.submit(lambda number=number: log.send(number), log.settle)
    queue.finish()
    assert log.events == [(what, number) for number in range(5) for what in ("send", "sent", "settle")]


def test_a_step_given_alone_is_sent_only_after_every_step_before_it_settled() -> None:
    log, release = Log(), threading.Event()
    queue = PushQueue(4, senders=2)
    queue.submit(lambda: log.send(0, wait_for=release), log.settle)
    queue.submit(lambda: log.send(1), log.settle, alone=True)
    time.sleep(0.2)  # room for a (wrong) early send of step 1
    assert ("send", 1) not in log.events
    release.set()
    queue.finish()
    assert index(log.events, ("settle", 0)) < index(log.events, ("send", 1))


def test_a_failed_send_settles_the_steps_before_it_and_none_after_it() -> None:
    log = Log()
    first_release, third_started = threading.Event(), threading.Event()
    queue = PushQueue(4, senders=3)
    queue.submit(lambda: log.send(0, wait_for=first_release), log.settle)
    queue.submit(lambda: log.send(1, wait_for=third_started, fail=True), log.settle)
    queue.submit(lambda: log.send(2, started=third_started), log.settle)
    time.sleep(0.1)
    first_release.set()  # step 0 answers after step 1 failed and step 2 was answered
    with pytest.raises(RuntimeError, match="send 1 failed"):
        queue.finish()
    assert ("sent", 2) in log.events  # answered beside the failed one ...
    assert [number for what, number in log.events if what == "settle"] == [0]  # ... and never settled


def test_after_a_failure_submit_raises_and_queued_steps_never_run() -> None:
    log, release = Log(), threading.Event()
    queue = PushQueue(3, senders=1)
    queue.submit(lambda: log.send(0, wait_for=release, fail=True), log.settle)
    queue.submit(lambda: log.send(1), log.settle)
    release.set()
    deadline = time.monotonic() + WAIT
    with pytest.raises(RuntimeError, match="send 0 failed"):
        while time.monotonic() < deadline:
            queue.submit(lambda: log.send(9), log.settle)
            time.sleep(0.01)
    with pytest.raises(RuntimeError, match="send 0 failed"):
        queue.finish()
    assert log.events == [("send", 0)]  # neither step 1 nor any step 9 was sent


def test_submit_waits_while_max_in_flight_steps_are_unsettled() -> None:
    log, release = Log(), threading.Event()
    queue = PushQueue(2, senders=2)
    queue.submit(lambda: log.send(0, wait_for=release), log.settle)
    queue.submit(lambda: log.send(1, wait_for=release), log.settle)
    third = threading.Thread(target=lambda: queue.submit(lambda: log.send(2), log.settle))
    third.start()
    third.join(0.2)
    assert third.is_alive()  # two unsettled: the third waits
    release.set()
    third.join(WAIT)
    assert not third.is_alive()
    queue.finish()
    assert [number for what, number in log.events if what == "settle"] == [0, 1, 2]
