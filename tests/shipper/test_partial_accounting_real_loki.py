"""The sink's accounting of partly refused pushes, on the real Loki: every record is either accepted
or rejected with its reason, and what it calls accepted is exactly what Loki holds (flushed, counted).

Loki answers a push for its *last* stream only, and lists at most 10 refused entries per stream
(tests/fixtures/loki/push/): a push of several streams whose first streams are refused reads as a
success, and a stream refused more than 10 entries must be counted from `total ignored: N out of M`.
"""

from __future__ import annotations

import time
from collections import Counter

import httpx

from shipper.models import LogRecord
from shipper.sinks.loki import LokiSink, LokiSinkConfig
from tests.real_loki import RealLoki, run_id

S = 1_000_000_000
H = 3600 * S


def _labels(rid: str, name: str) -> dict[str, str]:
    return {"source": "gcs", "service_name": "trades", "prefix": name, "level": "info", "run_id": rid}


def test_partly_refused_push_is_counted_as_loki_stored_it(real_loki: RealLoki) -> None:
    rid = run_id("acct")
    now = time.time_ns()
    a, b, c = (_labels(rid, name) for name in ("a", "b", "c"))
    # Loki already holds a newer entry in streams a and b: entries over 1 h older are refused
    real_loki.push([(a, [(now, "a newest")]), (b, [(now, "b newest")])])

    records = [
        *[LogRecord(now - 3 * H + i * S, f"a behind {i}", a, {"line_no": str(i)}) for i in range(25)],
        *[LogRecord(now - 10 * 60 * S + i, f"a fresh {i}", a, {"line_no": str(100 + i)}) for i in range(5)],
        *[LogRecord(now - 2 * H + i * S, f"b behind {i}", b) for i in range(3)],
        *[LogRecord(now - 5 * S + i, f"b fresh {i}", b) for i in range(4)],
        LogRecord(now - S, "b big metadata", b, {"blob": "m" * 70_000}),  # over Loki's 64 KB
        *[LogRecord(now - 4 * H + i * S, f"c new stream {i}", c) for i in range(6)],  # new stream: all fine
        LogRecord(now - 9 * 24 * H, "too old for Loki", c),
    ]
    with httpx.Client(timeout=30) as client:
        sink = LokiSink(LokiSinkConfig(url=real_loki.url, batch_max_entries=10_000), client)
        result = sink.push(records, source="acct")

    reasons = Counter(rejected.reason for rejected in result.rejected)
    assert result.accepted + len(result.rejected) == len(records)
    # the 28 entries too far behind their stream's newest went to their late_hour streams instead
    assert reasons == {"structured_metadata": 1, "too_old": 1}

    real_loki.flush()
    selector = f'{{run_id="{rid}"}}'
    held = real_loki.all_lines(selector, start_ns=now - 8 * 24 * H, end_ns=now + 60 * S)
    held_by_shipper = Counter(held) - Counter(["a newest", "b newest"])
    shipped = Counter(record.line for record in records) - Counter(r.record.line for r in result.rejected)
    assert held_by_shipper == shipped
    assert sum(held_by_shipper.values()) == result.accepted == 15 + 28
    late = real_loki.all_lines(f'{{run_id="{rid}", late_hour=~".+"}}', start_ns=now - 8 * 24 * H,
                               end_ns=now + 60 * S)
    behind = [f"a behind {i}" for i in range(25)] + [f"b behind {i}" for i in range(3)]
    assert Counter(late) == Counter(behind)
