"""Late entries against the real Loki: nothing an hour behind its stream is lost, even when Loki
does not say so.

Loki 3.7 answers a push with the outcome of the last stream it stored: entries of an earlier
stream refused as too far behind are dropped under a 204. Measured here on the binary first, then
the sink must store everything (live streams alone per request, late entries in late_hour
streams) and still match the usual selector."""

from __future__ import annotations

import time
from collections import Counter

import httpx

from shipper.models import LogRecord
from shipper.sinks.loki import LokiSink, LokiSinkConfig
from tests.real_loki import RealLoki, flush_and_wait, push_body, run_id

HOUR = 3600 * 1_000_000_000


def test_loki_answers_204_while_refusing_an_earlier_streams_entries(real_loki: RealLoki) -> None:
    """The behaviour the sink works around, as the binary shows it (fails if Loki changes it)."""
    run, now = run_id("silent"), time.time_ns()
    first, last = {"run": run, "s": "first"}, {"run": run, "s": "last"}
    real_loki.push([(first, [(now, "newest")]), (last, [(now, "newest")])])
    answer = real_loki.push_raw(push_body([(first, [(now - 24 * HOUR, "a day behind")]),
                                           (last, [(now - 1, "fine")])]))
    alone = real_loki.push_raw(push_body([(first, [(now - 24 * HOUR, "a day behind")])]))
    assert answer.status_code == 204  # nothing says "a day behind" was refused...
    assert alone.status_code == 400 and "too far behind" in alone.text  # ...but it was


def test_entries_behind_several_live_streams_all_land_once(real_loki: RealLoki) -> None:
    run, now = run_id("late"), time.time_ns()
    streams = [{"source": "gcs", "service_name": "trades", "run": run, "level": level}
               for level in ("info", "error", "warn")]
    newest = [LogRecord(now - i, f"{labels['level']} newest", labels) for i, labels in enumerate(streams)]
    history = [LogRecord(now - (30 - k % 24) * HOUR - k * 1_000_000, f"{labels['level']} history {k}", labels,
                         {"line_no": str(k)})
               for k in range(240) for labels in streams[k % 3 : k % 3 + 1]]
    with httpx.Client() as client:
        LokiSink(LokiSinkConfig(url=real_loki.url), client).push(newest, source="late-test")
        # a new sink (another process) knows nothing of what Loki holds
        result = LokiSink(LokiSinkConfig(url=real_loki.url), client).push(history, source="late-test")
    assert result.accepted == len(history) and result.rejected == []
    flush_and_wait(real_loki)
    selector = f'{{source="gcs", run="{run}"}}'
    lines = real_loki.all_lines(selector, start_ns=now - 40 * HOUR, end_ns=now + HOUR)
    assert Counter(lines) == Counter(record.line for record in [*newest, *history])
    late = real_loki.all_lines(f'{{source="gcs", run="{run}", late_hour=~".+"}}', start_ns=now - 40 * HOUR,
                               end_ns=now + HOUR)
    assert len(late) == len(history)
    assert real_loki.count(selector, start_ns=now - 40 * HOUR, end_ns=now + HOUR) == len(lines)


def test_history_shipped_before_is_not_stored_again_in_a_late_stream(real_loki: RealLoki) -> None:
    """A backfill, or an object rewritten and read again, sends entries the live stream already
    holds; an hour behind its newest, they would go to a late stream and be stored twice. Loki is
    asked first (within its ingester query window of ~3 h, which is what this covers)."""
    run, now = run_id("again"), time.time_ns()
    labels = {"source": "gcs", "service_name": "trades", "run": run, "level": "info"}
    history = [LogRecord(now - 150 * 60 * 1_000_000_000 + k * 60 * 1_000_000_000, f"shipped {k}", labels)
               for k in range(150)]  # 2.5 h up to now, in order: all accepted by the live stream
    with httpx.Client() as client:
        first = LokiSink(LokiSinkConfig(url=real_loki.url), client).push(history, source="again-test")
        again = LokiSink(LokiSinkConfig(url=real_loki.url), client).push(history, source="again-test")
    assert first.accepted == again.accepted == len(history) and again.rejected == []
    selector = f'{{run="{run}"}}'
    start, end = now - 3 * HOUR, now + HOUR
    assert real_loki.all_lines(f'{{run="{run}", late_hour=~".+"}}', start_ns=start, end_ns=end) == []
    assert real_loki.count(selector, start_ns=start, end_ns=end) == len(history)
