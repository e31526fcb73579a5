from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from shipper.metrics import REGISTRY
from shipper.models import LogRecord
from shipper.sinks.loki import LokiSink, LokiSinkConfig
from tests.loki_mock import LokiMock

NOW_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z, the sink's wall clock in these tests
SECOND = 1_000_000_000
HOUR = 3600 * SECOND


class FakeTime:
    """Monotonic clock + sleep that only advance when the sink sleeps."""

    def __init__(self) -> None:
        self.now = 10_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_sink(fake_time: FakeTime) -> Iterator[Callable[..., LokiSink]]:
    clients: list[httpx.Client] = []

    def build(mock: LokiMock, **config: Any) -> LokiSink:
        client = httpx.Client(transport=httpx.MockTransport(mock.handler))
        clients.append(client)
        config.setdefault("url", "http://loki.test:3100")
        return LokiSink(
            LokiSinkConfig(**config), client, sleep=fake_time.sleep, clock=fake_time.clock,
            now_ns=lambda: NOW_NS,
        )

    yield build
    for client in clients:
        client.close()


def record(offset_s: float, line: str, labels: dict[str, str] | None = None, **metadata: str) -> LogRecord:
    """A record `offset_s` seconds before NOW_NS (plus a ns fraction to check precision)."""
    return LogRecord(
        ts_ns=NOW_NS - int(offset_s * SECOND) + 7,
        line=line,
        labels=labels if labels is not None else {"source": "gcs", "service_name": "trades", "level": "info"},
        metadata=metadata,
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
