"""The incident of issue 19, planted in the real Loki: in one bucket (the run id), 300
"insufficient margin (code -2019)" errors, 12 "rate limit (code -1003)" errors and 6 websocket
errors in trades, 10 OpenAI timeouts in reflections (plain text), over info background lines,
labelled as the shipper labels GCS lines (DESIGN.md). The previous hour holds background only."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from tests.real_loki import RealLoki, run_id

NS = 1_000_000_000
MARGIN, RATE_LIMIT, WEBSOCKET, TIMEOUTS, BACKGROUND = 300, 12, 6, 10, 200


@dataclass(frozen=True)
class Incident:
    bucket: str
    first_error_ns: int  # the first "insufficient margin" line
    now_ns: int


def _labels(bucket: str, prefix: str, level: str) -> dict[str, str]:
    return {"source": "gcs", "service_name": prefix, "bucket": bucket, "prefix": prefix, "level": level}


def _json(ts_ns: int, level: str, msg: str, **fields: object) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ns // NS)) + "Z"
    return json.dumps({"timestamp": stamp, "level": level, "msg": msg, **fields})


def plant_incident(loki: RealLoki) -> Incident:
    bucket = run_id("bkt")
    now = time.time_ns()
    start = now - 50 * 60 * NS  # the incident: the last 50 minutes
    errors: list[tuple[int, str]] = []
    for i in range(MARGIN):
        ts = start + i * 8 * NS + 1000
        errors.append((ts, _json(ts, "error", "broker order rejected: insufficient margin (code -2019)",
                                 order_id=f"ord_{i:06d}x", symbol="BTCUSDT", qty=0.001 * (i + 1))))
    for i in range(RATE_LIMIT):
        ts = start + i * 180 * NS + 2000
        errors.append((ts, _json(ts, "error", "broker order rejected: rate limit (code -1003)",
                                 order_id=f"ord_{i:06d}r", symbol="ETHUSDT")))
    for i in range(WEBSOCKET):
        ts = start + i * 400 * NS + 3000
        errors.append((ts, _json(ts, "error", f"websocket disconnected: connection reset, retry {i + 1}")))
    background = []
    for i in range(BACKGROUND):  # both hours: steady, not news
        ts = now - 2 * 3600 * NS + i * 36 * NS + 500
        background.append((ts, _json(ts, "info", "order filled", order_id=f"ord_{i:06d}f", qty=i)))
    timeouts = []
    for i in range(TIMEOUTS):
        ts = start + i * 240 * NS + 4000
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts // NS)) + ".217Z"
        timeouts.append((ts, f"{stamp} ERROR: OpenAI request timed out after 60 s (attempt {i % 3 + 1})"))
    loki.push([
        (_labels(bucket, "trades", "error"), sorted(errors)),
        (_labels(bucket, "trades", "info"), background),
        (_labels(bucket, "reflections", "error"), timeouts),
    ])
    return Incident(bucket, start + 1000, now)
