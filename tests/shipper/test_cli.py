"""`shipper` CLI end to end: GCS emulator -> main([...]) -> LokiMock as a real HTTP server."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from shipper import metrics
from shipper.checkpoint import MemoryCheckpointer
from shipper.cli import main, parse_since
from shipper.config import get_settings
from shipper.logs import HANDLER_NAME, configure_logging
from shipper.pipeline import Pipeline
from shipper.scheduler import build_scheduler, make_job
from shipper.sources.memory import MemorySource
from tests.conftest import free_port
from tests.loki_mock import LokiMock
from tests.shipper.gcs_emulator import GcsEmulator, running_emulator
from tests.shipper.test_pipeline import RecordingSink, records

pytestmark = pytest.mark.emulator
BUCKET = "cli-bucket"
LINES = 12


@pytest.fixture(scope="module")
def emulator() -> Iterator[GcsEmulator]:
    with running_emulator() as running:
        bucket = running.bucket(BUCKET)
        bucket.blob("trades/t.jsonl").upload_from_string(
            "".join(json.dumps({"i": i, "level": "info"}) + "\n" for i in range(LINES)).encode())
        yield running


@pytest.fixture
def loki() -> Iterator[tuple[LokiMock, str]]:
    mock = LokiMock()
    with mock.serve() as url:
        yield mock, url


@pytest.fixture
def env(emulator: GcsEmulator, loki: tuple[LokiMock, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, json_logs: io.StringIO) -> Iterator[Path]:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    monkeypatch.setenv("LOKI_URL", loki[1])
    monkeypatch.setenv("GCS_BUCKET_NAME", BUCKET)
    monkeypatch.setenv("GCS_PREFIXES", "trades/")
    monkeypatch.setenv("SHIPPER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RETRY_MAX_TOTAL_SECONDS", "0.3")
    monkeypatch.setenv("RETRY_MIN_BACKOFF_SECONDS", "0.05")
    monkeypatch.setattr("shipper.cli.configure_logging",
                        lambda level, loki=None: configure_logging(level, stream=json_logs, loki=loki))
    root = logging.getLogger()
    level = root.level
    get_settings.cache_clear()
    yield tmp_path / "state"
    get_settings.cache_clear()
    root.handlers[:] = [h for h in root.handlers if h.get_name() != HANDLER_NAME]
    root.setLevel(level)


@pytest.fixture
def json_logs() -> io.StringIO:
    return io.StringIO()


def failures(source: str) -> float:
    labels = {"source": source, "outcome": "failure"}
    return metrics.REGISTRY.get_sample_value("shipper_runs_total", labels) or 0.0


def test_once_ships_commits_and_logs_json(env: Path, loki: tuple[LokiMock, str], json_logs: io.StringIO,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    mock, _ = loki
    assert main(["once"]) == 0
    out = capsys.readouterr().out
    err = json_logs.getvalue()
    assert f"gcs: ok; shipped {LINES}, rejected 0" in out
    assert len(mock.distinct()) == LINES
    assert (env / "gcs" / "checkpoint.json").is_file()
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    passes = [event for event in events if event.get("event") == "source_pass"]
    assert passes and passes[-1]["outcome"] == "success" and passes[-1]["accepted"] == LINES
    assert main(["once", "--source", "gcs"]) == 0
    assert "gcs: ok; shipped 0" in capsys.readouterr().out


def test_once_fails_without_moving_the_checkpoint_when_loki_is_down(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOKI_URL", f"http://127.0.0.1:{free_port()}")
    before = failures("gcs")
    assert main(["once"]) == 1
    assert "gcs: FAILED SinkUnavailable" in capsys.readouterr().out
    # only the new objects' registration (their timestamp base) was committed: nothing read past
    entries = json.loads((env / "gcs" / "checkpoint.json").read_text())["cursor"]["objects"]
    assert entries and all(e["offset"] == 0 and not e["done"] for e in entries.values())
    assert failures("gcs") == before + 1


def test_corrupt_checkpoint_exits_2_naming_the_file(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "gcs").mkdir(parents=True)
    (env / "gcs" / "checkpoint.json").write_text("{broken")
    assert main(["once"]) == 2
    assert str(env / "gcs" / "checkpoint.json") in capsys.readouterr().err


def test_configuration_errors_exit_2(env: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["once", "--source", "nope"]) == 2
    assert "unknown source 'nope'; configured: gcs" in capsys.readouterr().err
    monkeypatch.delenv("GCS_BUCKET_NAME")
    get_settings.cache_clear()
    assert main(["once"]) == 2
    assert "no source configured" in capsys.readouterr().err


def test_check_reports_what_it_found(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "config: OK 1 source(s): gcs (gcs)"
    assert lines[1].startswith("loki: OK Loki at http://127.0.0.1:")
    assert lines[2] == f"checkpoint gcs: OK {env / 'gcs' / 'checkpoint.json'} (none yet)"
    assert lines[3] == f"source gcs: OK gcs bucket {BUCKET} readable; objects per prefix: trades/: 1"


def test_check_fails_on_unready_loki_and_missing_bucket(
    env: Path, loki: tuple[LokiMock, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    loki[0].ready_status = 503
    monkeypatch.setenv("GCS_BUCKET_NAME", "missing-bucket")
    get_settings.cache_clear()
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "loki: FAIL Loki at" in out and "HTTP 503" in out
    assert "source gcs: FAIL SourceError: gcs bucket 'missing-bucket'" in out


def test_backfill_same_streams_then_separate_stream(
    env: Path, loki: tuple[LokiMock, str], capsys: pytest.CaptureFixture[str]
) -> None:
    mock, _ = loki
    assert main(["once"]) == 0
    live = mock.distinct()
    assert main(["backfill", "--since", "1h"]) == 0
    assert mock.distinct() == live  # same streams: Loki dropped the resent entries as duplicates
    assert (env / "gcs.backfill" / "checkpoint.json").is_file()
    assert main(["backfill", "--since", "1h", "--separate-stream"]) == 0
    separate = mock.distinct() - live
    assert len(separate) == LINES and all(("backfill", "true") in labels for labels, _, _ in separate)
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()[-1]  # tqdm's last refresh
    # a total in bytes of the objects to read, reached, with an ETA (elapsed<left) and the lines shipped
    assert "backfill gcs (1 objects)" in bar and "100%" in bar and "<00:00" in bar, bar
    assert f"lines={LINES}" in bar, bar


def test_backfill_gives_untimed_lines_the_timestamps_the_live_pass_gave_them(
    env: Path, emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = emulator.bucket("cli-rewritten")
    blob = bucket.blob("trades/untimed.log")
    blob.upload_from_string(b"".join(b"INFO order %d filled\n" % i for i in range(4)))
    monkeypatch.setenv("GCS_BUCKET_NAME", "cli-rewritten")
    mock = LokiMock()
    with mock.serve() as url:
        monkeypatch.setenv("LOKI_URL", url)
        get_settings.cache_clear()
        assert main(["once"]) == 0
        time.sleep(0.01)
        # rewritten later with one more line: a new generation and a newer `updated`
        blob.upload_from_string(b"".join(b"INFO order %d filled\n" % i for i in range(5)))
        assert main(["backfill", "--since", "1h"]) == 0
    assert len(mock.distinct()) == 5  # the four old lines were resent with their first timestamps


def test_backfill_behind_the_live_stream_lands_in_late_streams_and_separate_stream_succeeds(
    env: Path, emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """History more than an hour behind what the live pass shipped used to be refused as too far
    behind (exit 3, lost unless re-run with --separate-stream): it now lands in the live labels
    plus late_hour=<hour>, so the default backfill succeeds and nothing is refused."""
    bucket = emulator.bucket("cli-backfill")
    bucket.blob("trades/live.jsonl").upload_from_string(b'{"msg": "live", "level": "info"}\n')
    mock = LokiMock(max_behind_ns=3600 * 1_000_000_000)  # Loki's "entry too far behind" window
    monkeypatch.setenv("GCS_BUCKET_NAME", "cli-backfill")
    with mock.serve() as url:
        monkeypatch.setenv("LOKI_URL", url)
        get_settings.cache_clear()
        assert main(["once"]) == 0
        history_ts = int(time.time()) - 3 * 3600
        bucket.blob("trades/history.jsonl").upload_from_string("".join(
            json.dumps({"ts": history_ts + i, "level": "info", "n": i}) + "\n" for i in range(5)).encode())
        before = metrics.REGISTRY.get_sample_value(
            "shipper_entries_rejected_total", {"source": "gcs", "reason": "too_far_behind"}) or 0
        assert main(["backfill", "--since", "1h"]) == 0
        out = capsys.readouterr().out
        assert "shipped 6, rejected 0" in out
        assert (metrics.REGISTRY.get_sample_value(
            "shipper_entries_rejected_total", {"source": "gcs", "reason": "too_far_behind"}) or 0) == before
        late = {ts for labels, ts, line in mock.distinct() if any(name == "late_hour" for name, _ in labels)}
        assert late == {(history_ts + i) * 1_000_000_000 for i in range(5)}
        assert main(["backfill", "--since", "1h", "--separate-stream"]) == 0
    backfilled = {(ts, line) for labels, ts, line in mock.distinct() if ("backfill", "true") in labels}
    assert {ts for ts, _ in backfilled} >= {(history_ts + i) * 1_000_000_000 for i in range(5)}


def test_python_dash_m_shipper_runs_the_cli(env: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "shipper", "once", "--source", "nope"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "unknown source 'nope'" in done.stderr


def test_parse_since() -> None:
    assert parse_since("2h", now=lambda: 10_000.0) == 2_800 * 1_000_000_000
    assert parse_since("2026-01-01T00:00:00Z") == 1_767_225_600 * 1_000_000_000
    with pytest.raises(Exception, match="is not a time"):
        parse_since("yesterday")


def test_scheduler_jobs_never_overlap_coalesce_and_jitter() -> None:
    pipelines = [Pipeline(MemorySource(name, records(3)), RecordingSink(), MemoryCheckpointer())
                 for name in ("s1", "s2")]
    scheduler = build_scheduler(pipelines, interval_seconds=60, scheduler=BackgroundScheduler(),
                                start_now=False)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"ship:s1", "ship:s2"}
    for job in jobs.values():
        assert job.max_instances == 1 and job.coalesce is True and job.misfire_grace_time == 60
        assert job.trigger.jitter == 6 and job.trigger.interval.total_seconds() == 60


def test_scheduler_job_asks_should_run_first() -> None:
    sink = RecordingSink()
    pipeline = Pipeline(MemorySource("s3", records(3)), sink, MemoryCheckpointer())
    leading = False
    job = make_job(pipeline, lambda: leading)
    job()
    assert sink.pushes == []
    leading = True
    job()
    assert sum(len(push) for push in sink.pushes) == 3


def test_scheduler_runs_jobs(tmp_path: Path) -> None:
    sink = RecordingSink()
    pipeline = Pipeline(MemorySource("s4", records(2)), sink, MemoryCheckpointer())
    scheduler: Any = build_scheduler([pipeline], interval_seconds=3600, scheduler=BackgroundScheduler())
    scheduler.start()
    try:
        for _ in range(100):
            if sink.pushes:
                break
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    assert sum(len(push) for push in sink.pushes) == 2


def test_build_source_dispatches_on_type(emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from shipper.config import GcsSourceConfig, ShipperSettings
    from shipper.sources.factory import build_source
    from shipper.sources.gcs import GcsSource

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    source = build_source(GcsSourceConfig(id="g", bucket=BUCKET, prefixes=["trades/"]), ShipperSettings())
    assert isinstance(source, GcsSource) and source.id == "g"
    assert source.check() == f"gcs bucket {BUCKET} readable; objects per prefix: trades/: 1"


def start_shipper_run(child_env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    """`shipper run` in its own process, its log (stderr) in `log_file`."""
    with log_file.open("w") as log_handle:
        return subprocess.Popen([sys.executable, "-m", "shipper", "run"], env=child_env,
                                stdout=subprocess.DEVNULL, stderr=log_handle)


def test_run_schedules_passes_serves_metrics_and_stops_on_sigterm(
    env: Path, loki: tuple[LokiMock, str]
) -> None:
    import os
    import signal

    metrics_port = free_port()
    child_env = {**os.environ, "SHIPPER_METRICS_PORT": str(metrics_port), "SHIPPER_INTERVAL_SECONDS": "5"}
    log_file = env.parent / "run.log"
    process = start_shipper_run(child_env, log_file)
    success = 'shipper_runs_total{outcome="success",source="gcs"}'
    try:
        exposition = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and success not in exposition:
            time.sleep(0.2)
            try:
                exposition = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
            except httpx.TransportError:
                continue
        assert 'shipper_runs_total{outcome="success",source="gcs"} 1.0' in exposition
        assert f'shipper_lines_shipped_total{{source="gcs"}} {LINES}.0' in exposition
        assert len(loki[0].distinct()) == LINES
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, log_file.read_text()
    events = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    assert any(event.get("event") == "shipper_started" for event in events)


def test_run_stops_within_10s_of_sigterm_while_loki_is_down_and_says_so(env: Path) -> None:
    import os
    import signal

    child_env = {**os.environ, "SHIPPER_METRICS_PORT": str(free_port()), "SHIPPER_INTERVAL_SECONDS": "60",
                 "LOKI_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: Loki is down
                 "RETRY_MAX_TOTAL_SECONDS": "300", "RETRY_MIN_BACKOFF_SECONDS": "2"}
    log_file = env.parent / "run-outage.log"
    process = start_shipper_run(child_env, log_file)
    try:
        deadline = time.monotonic() + 30
        while "loki_push_retry" not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)  # the first pass is retrying its push: the outage is under way
        assert "loki_push_retry" in log_file.read_text(), log_file.read_text()
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        process.wait(timeout=30)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
    assert took < 10, f"shipper run took {took:.1f}s to stop after SIGTERM"
    events = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    stopping = [event for event in events if event.get("event") == "shipper_stopping"]
    assert stopping and "SIGTERM" in stopping[0]["message"]
    assert any("abandoned" in event["message"] for event in events), "the abandoned push is not logged"


class SlowLoki(LokiMock):
    """Answers each push after `delay` seconds: a healthy Loki far away, or a long backlog."""

    delay = 0.5

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/push"):
            time.sleep(self.delay)
        return super().handler(request)


def test_sigterm_stops_a_pass_at_its_next_push_while_loki_is_healthy(
    env: Path, emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM in the middle of a long pass: it ends at its next push or commit, having committed
    what Loki acknowledged, instead of running to its end past the pod's grace period; the next
    start ships the rest, each line once."""
    import os
    import signal

    hour_s = 3600
    start_s = int(time.time()) - 13 * hour_s
    lines = "".join(json.dumps({"timestamp": start_s + i * hour_s, "i": i}) + "\n" for i in range(LINES))
    emulator.bucket(BUCKET).blob("hourly/h.jsonl").upload_from_string(lines.encode())  # a push an hour
    slow = SlowLoki()
    with slow.serve() as url:
        monkeypatch.setenv("LOKI_URL", url)
        monkeypatch.setenv("GCS_PREFIXES", "hourly/")
        get_settings.cache_clear()
        child_env = {**os.environ, "SHIPPER_METRICS_PORT": str(free_port()), "SHIPPER_INTERVAL_SECONDS": "60"}
        log_file = env.parent / "run-sigterm.log"
        process = start_shipper_run(child_env, log_file)
        try:
            deadline = time.monotonic() + 30
            while not slow.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert slow.requests, log_file.read_text()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, log_file.read_text()
        assert len(slow.distinct()) < LINES / 2, "the pass ran on after SIGTERM"
        slow.delay = 0
        assert main(["once"]) == 0
    assert len(slow.distinct()) == LINES


def test_a_live_pass_takes_the_timestamp_base_of_objects_a_backfill_shipped_first(
    env: Path, emulator: GcsEmulator, loki: tuple[LokiMock, str]
) -> None:
    """Backfill first (re-filling Loki on a new deployment), then the object grows (a new
    generation), then the live pass sees it for the first time: lines without a timestamp of
    their own keep the backfill's timestamps instead of being stored again under new ones."""
    mock, _ = loki
    blob = emulator.bucket(BUCKET).blob("trades/app.log")
    blob.upload_from_string(b"INFO alpha\nINFO beta\n")
    try:
        assert main(["backfill", "--since", "1h"]) == 0
        blob.upload_from_string(b"INFO alpha\nINFO beta\nINFO gamma\n")
        assert main(["once"]) == 0
    finally:
        blob.delete()
    stored = [(ts, line) for _, ts, line in mock.distinct() if line.startswith("INFO ")]
    assert sorted(line for _, line in stored) == ["INFO alpha", "INFO beta", "INFO gamma"]
