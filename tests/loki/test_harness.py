"""The real-Loki harness itself: the project's config loads and Loki behaves as the tests assume."""

from __future__ import annotations

import time

from tests.real_loki import RealLoki, run_id


def test_pushed_lines_are_queryable_by_run_id(real_loki: RealLoki) -> None:
    rid = run_id()
    now = time.time_ns()
    real_loki.push([({"source": "test", "run_id": rid}, [(now + i, f"line {i}") for i in range(3)])])
    lines = real_loki.all_lines(f'{{run_id="{rid}"}}', start_ns=now - 10**9, end_ns=now + 10**9)
    assert lines == ["line 0", "line 1", "line 2"]
    assert real_loki.count(f'{{run_id="{rid}"}}', start_ns=now - 10**9, end_ns=now + 10**9) == 3


def test_all_lines_pages_across_shared_timestamps(real_loki: RealLoki) -> None:
    rid = run_id()
    now = time.time_ns()
    entries = [(now + i // 7, f"same {i:04d}") for i in range(120)]
    real_loki.push([({"source": "test", "run_id": rid}, entries)])
    lines = real_loki.all_lines(f'{{run_id="{rid}"}}', start_ns=now - 10**9, end_ns=now + 10**9, page=50)
    assert sorted(lines) == [f"same {i:04d}" for i in range(120)]
