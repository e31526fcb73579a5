"""The overview's error trend: errors of the last hour against the hour before, per source and
service, from one Loki query; when they rose, the top source, service and template are named."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anyio import to_thread

from gateway.services.aggregate import LineSource
from gateway.services.logql import build_log_query
from gateway.services.templates import TemplateMiner

_ERRORS = '{source=~".+", level=~"error|critical"}'
# one query, both hours: the previous hour's series carry window="previous"
TREND_QUERY = (
    f'label_replace(sum by (source, service_name) (count_over_time({_ERRORS}[1h])),'
    ' "window", "current", "", "")'
    f' or label_replace(sum by (source, service_name) (count_over_time({_ERRORS}[1h] offset 1h)),'
    ' "window", "previous", "", "")'
)
RISE_FACTOR = 2.0  # degraded: at least twice the previous hour's errors ...
RISE_MIN_ERRORS = 20  # ... and at least this many, so 1 -> 3 is not an alarm
TEMPLATE_MAX_LINES = 2000
_NS = 1_000_000_000


@dataclass(frozen=True)
class Trend:
    by_source: dict[str, float]
    by_service: dict[tuple[str, str], float]
    previous_by_service: dict[tuple[str, str], float]

    @property
    def last_hour(self) -> int:
        return int(sum(self.by_service.values()))

    @property
    def previous_hour(self) -> int:
        return int(sum(self.previous_by_service.values()))

    @property
    def rising(self) -> bool:
        return self.last_hour >= RISE_MIN_ERRORS and self.last_hour >= RISE_FACTOR * self.previous_hour

    def top(self) -> tuple[str, str, int, int] | None:
        """(source, service, errors last hour, errors the hour before) of the largest riser."""
        if not self.by_service:
            return None
        key = max(self.by_service, key=lambda k: (self.by_service[k] - self.previous_by_service.get(k, 0), k))
        return key[0], key[1], int(self.by_service[key]), int(self.previous_by_service.get(key, 0))


def parse_trend(answer: Any) -> Trend:
    """Loki's instant vector (`data` or the bare result list) of TREND_QUERY. A series without
    the window label counts as the last hour. Raises on malformed samples."""
    if isinstance(answer, dict):
        answer = answer.get("data", answer)
        answer = answer.get("result", []) if isinstance(answer, dict) else answer
    by_source: dict[str, float] = {}
    current: dict[tuple[str, str], float] = {}
    previous: dict[tuple[str, str], float] = {}
    for sample in answer or []:
        metric = sample.get("metric", {})
        key = (metric.get("source", "unknown"), metric.get("service_name", "unknown"))
        value = float(sample.get("value", [0, "0"])[1])
        if not math.isfinite(value):  # "NaN", "+Inf": no count of errors
            continue
        if metric.get("window") == "previous":
            previous[key] = previous.get(key, 0.0) + value
        else:
            current[key] = current.get(key, 0.0) + value
            by_source[key[0]] = by_source.get(key[0], 0.0) + value
    return Trend(by_source, current, previous)


async def top_template(
    loki: LineSource,
    *,
    source: str,
    service: str,
    now_ns: int,
    tenant: str | None,
    scope: Callable[[str], str],
    redact: Callable[[str], str],
) -> dict[str, Any] | None:
    """The most frequent error template of one service in the last hour (at most
    TEMPLATE_MAX_LINES lines read); `scope` puts the caller's label policy into the query."""
    query = scope(build_log_query({"source": source, "service_name": service}, levels=["error", "critical"]))
    miner = TemplateMiner(redact)
    lines = [line async for line in loki.iter_lines(
        query, start_ns=now_ns - 3600 * _NS, end_ns=now_ns, tenant=tenant, max_lines=TEMPLATE_MAX_LINES
    )]
    await to_thread.run_sync(miner.add_lines, lines, True)  # seconds of varied lines: off the event loop
    stats = max(miner.stats(), key=lambda s: s.count, default=None)
    if stats is None:
        return None
    return {
        "template": miner.template_text(stats.cluster_id), "count": stats.count, "codes": list(stats.codes)
    }
