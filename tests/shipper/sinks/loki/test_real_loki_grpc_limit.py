"""A push over the gRPC message limit between Loki's distributor and its ingesters (4 MiB by
default) fails with a 500 that no retry changes. Measured on the binary first (fails if Loki
changes it), then the sink with BATCH_MAX_BYTES above the limit must land every line, by sending
such a push again in halves, instead of retrying it until its budget runs out."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from shipper.models import LogRecord
from shipper.sinks.loki import LokiSink, LokiSinkConfig
from shipper.sinks.loki.transport import GRPC_TOO_LARGE
from tests.real_loki import RAISED_LIMITS, RealLoki, own_loki, push_body, run_id

pytestmark = pytest.mark.real_loki

LINES = 24_000  # ~250 bytes each: ~6 MB, over 4 MiB
SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def raised_loki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealLoki]:
    """Rate limits out of the way: the gRPC limit must be what refuses."""
    yield from own_loki(tmp_path_factory, "raised-loki", RAISED_LIMITS)


def _lines(run: str) -> list[str]:
    pad = "p" * 160
    return [f'{{"run": "{run}", "n": {i}, "msg": "order filled", "pad": "{pad}"}}' for i in range(LINES)]


def test_loki_answers_a_push_over_its_grpc_limit_with_a_500(raised_loki: RealLoki) -> None:
    run, now = run_id("grpc"), time.time_ns()
    lines = _lines(run)
    answer = raised_loki.push_raw(push_body([({"run": run}, [(now - LINES + i, line)
                                                             for i, line in enumerate(lines)])]))
    assert answer.status_code == 500 and GRPC_TOO_LARGE in answer.text, (answer.status_code, answer.text)


def test_a_batch_over_the_grpc_limit_lands_in_halves(raised_loki: RealLoki) -> None:
    run, now = run_id("grpc"), time.time_ns()
    labels = {"source": "gcs", "service_name": "trades", "run": run}
    records = [LogRecord(now - 60 * SECOND + i * 1000, line, labels, {"line_no": str(i)})
               for i, line in enumerate(_lines(run))]
    config = LokiSinkConfig(url=raised_loki.url, batch_max_bytes=16 << 20, batch_max_entries=100_000,
                            retry_max_total_seconds=20)
    with httpx.Client() as client:
        result = LokiSink(config, client).push(records, source="grpc-test")
    assert (result.accepted, result.rejected) == (LINES, [])
    selector = f'{{run="{run}"}}'
    window = {"start_ns": now - 120 * SECOND, "end_ns": now + 60 * SECOND}
    assert sorted(raised_loki.all_lines(selector, **window)) == sorted(r.line for r in records)
