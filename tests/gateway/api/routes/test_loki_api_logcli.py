"""logcli, Loki's own client, unchanged against the gateway (a real uvicorn on 127.0.0.1) and against
the real Loki directly: `query`, `labels`, `series` and `--tail` answer the same for a full-access
key, never show another source for a GCS-scoped key, and a wrong key is an error logcli reports."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.main import create_app
from gateway.services.redact import redact, redact_fields
from tests.conftest import stop_process
from tests.gateway.gateway_server import serving
from tests.gateway.loki_api_data import LINES_PER_SOURCE, SECOND, Keys, Planted, keys_for, leaks, plant
from tests.real_loki import RealLoki, find_loki_binary

COMMAND_TIMEOUT_SECONDS = 30
TAIL_WAIT_SECONDS = 15.0


@dataclass(frozen=True)
class Setup:
    logcli: str
    gateway: str
    loki: RealLoki
    keys: Keys
    planted: Planted


@pytest.fixture(scope="module")
def setup(real_loki: RealLoki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    logcli = find_loki_binary("logcli")
    if logcli is None:
        pytest.skip("no logcli beside the Loki binary (LOKI_BINARY's directory) or on PATH")
    keys = keys_for(real_loki, tmp_path_factory.mktemp("logcli-keys"))
    planted = plant(real_loki)
    with serving(create_app(keys.settings)) as url:
        yield Setup(logcli, url, real_loki, keys, planted)


def logcli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOKI_")}


def logcli(setup: Setup, key: str | None, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """logcli against the gateway with `key`, or against Loki itself when `key` is None."""
    target = [f"--addr={setup.gateway}", f"--bearer-token={key}"] if key else [f"--addr={setup.loki.url}"]
    done = subprocess.run(
        [setup.logcli, *target, "--quiet", "--timezone=UTC", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        env=logcli_env(),
        check=False,
    )
    if check:
        assert done.returncode == 0, (args, done.stderr[-2000:])
    return done


def jsonl(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def entries(output: str) -> list[str]:
    return sorted(json.dumps(item, sort_keys=True) for item in jsonl(output))


def test_query_labels_and_series_answer_as_loki_does_for_a_full_key(setup: Setup) -> None:
    run, key = setup.planted.run, setup.keys.full
    query = [
        "query",
        f'{{run="{run}"}} != "password"',
        "--since=1h",
        "--limit=1000",
        "--output=jsonl",
        "--include-common-labels",
    ]
    through, direct = logcli(setup, key, *query), logcli(setup, None, *query)
    assert entries(through.stdout) == entries(direct.stdout)
    assert len(jsonl(through.stdout)) == 3 * LINES_PER_SOURCE - 1
    # a small batch makes logcli page through the gateway
    paged = logcli(setup, key, *query, "--batch=5")
    assert entries(paged.stdout) == entries(direct.stdout)
    metric = ["instant-query", f'sum by (source) (count_over_time({{run="{run}"}}[1h]))']
    assert json.loads(logcli(setup, key, *metric).stdout) != []
    for args in (
        ["labels"],
        ["labels", "source"],
        ["series", f'{{run="{run}"}}'],
        ["series", "--analyze-labels", f'{{run="{run}"}}'],
    ):
        # sorted: logcli orders --analyze-labels ties differently from run to run
        assert sorted(logcli(setup, key, *args).stdout.splitlines()) == sorted(
            logcli(setup, None, *args).stdout.splitlines()
        ), args
    secret = logcli(setup, key, "query", f'{{run="{run}"}} |= "password"', "--since=1h", "--output=raw")
    assert secret.stdout.strip() == "gcs login password=[REDACTED] ok"


@pytest.mark.parametrize(
    "selector",
    [
        '{{run="{run}"}}',
        '{{run="{run}", source=~".+"}}',
        '{{run="{run}", source!="gcs"}}',
        '{{run="{run}", source="pod"}}',
        '{{run="{run}", source=~"pod|firestore"}}',
        '{{__name__=~".+", run="{run}"}}',
        '{{run=~".+"}}',
        '{{run="{run}"}} or {{source="pod"}}',
    ],
)
def test_a_gcs_scoped_key_sees_gcs_only_whatever_logcli_sends(setup: Setup, selector: str) -> None:
    run, key = setup.planted.run, setup.keys.gcs
    text = selector.format(run=run)
    query = logcli(
        setup,
        key,
        "query",
        text,
        "--since=1h",
        "--limit=1000",
        "--output=jsonl",
        "--include-common-labels",
        check=False,
    )
    assert not leaks(query.stdout + query.stderr), query.stdout[:500]
    assert all(item["labels"]["source"] == "gcs" for item in jsonl(query.stdout))
    metric = logcli(
        setup, key, "instant-query", f"sum by (source) (count_over_time({text}[1h]))", check=False
    )
    assert not leaks(metric.stdout + metric.stderr) and '"pod"' not in metric.stdout
    series = logcli(setup, key, "series", text, "--since=1h", check=False)
    assert not leaks(series.stdout + series.stderr), series.stdout[:500]


def test_gcs_scoped_listings_hold_only_gcs(setup: Setup) -> None:
    key, run = setup.keys.gcs, setup.planted.run
    assert logcli(setup, key, "labels", "source").stdout.split() == ["gcs"]
    names = logcli(setup, key, "labels", "service_name").stdout
    assert "trades" in names and not leaks(names)
    mine = logcli(setup, key, "query", f'{{run="{run}"}}', "--since=1h", "--limit=1000", "--output=jsonl")
    assert len(jsonl(mine.stdout)) == LINES_PER_SOURCE
    labels = logcli(setup, key, "labels").stdout.split()
    assert "namespace" not in labels and "collection" not in labels  # pod and firestore label names


def test_a_wrong_key_is_a_401_logcli_reports(setup: Setup) -> None:
    for args in (["query", '{source="gcs"}'], ["labels"], ["series", '{source="gcs"}']):
        done = logcli(setup, "gwk_wrong-key-wrong-key-wrong-key", *args, check=False)
        assert done.returncode != 0 and "invalid_api_key" in done.stderr, done.stderr
    tail = logcli(setup, "gwk_wrong", "query", "--tail", '{source="gcs"}', check=False)
    assert tail.returncode != 0 and "invalid_api_key" in tail.stderr and "bad handshake" in tail.stderr


class Tail:
    """`logcli query --tail` in the background, its jsonl lines collected."""

    def __init__(self, setup: Setup, key: str | None, query: str) -> None:
        target = [f"--addr={setup.gateway}", f"--bearer-token={key}"] if key else [f"--addr={setup.loki.url}"]
        self.process = subprocess.Popen(
            [
                setup.logcli,
                *target,
                "--quiet",
                "query",
                "--tail",
                query,
                "--since=1h",
                "--limit=1000",
                "--output=jsonl",
                "--include-common-labels",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=logcli_env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def collect(self, count: int, within: float = TAIL_WAIT_SECONDS) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + within
        while len(got) < count and time.monotonic() < deadline:
            try:
                got.append(json.loads(self.lines.get(timeout=0.2)))
            except queue.Empty:
                continue
        return got

    def stop(self) -> str:
        stop_process(self.process)
        return self.process.stderr.read() if self.process.stderr else ""


def test_tail_replays_and_follows_like_loki_and_stays_contained(setup: Setup) -> None:
    run = setup.planted.run
    query = f'{{run="{run}"}}'
    direct, full, scoped = (
        Tail(setup, None, query),
        Tail(setup, setup.keys.full, query),
        Tail(setup, setup.keys.gcs, query),
    )
    try:
        everything = 3 * LINES_PER_SOURCE
        first_direct, first_full = direct.collect(everything), full.collect(everything)
        first_scoped = scoped.collect(LINES_PER_SOURCE)
        assert len(first_direct) == everything
        redacted = [
            {**e, "line": redact(e["line"]), "labels": redact_fields(e["labels"])} for e in first_direct
        ]
        assert sorted(map(str, first_full)) == sorted(map(str, redacted))
        assert len(first_scoped) == LINES_PER_SOURCE and {e["labels"]["source"] for e in first_scoped} == {
            "gcs"
        }
        # live lines: the new GCS one reaches the scoped tail, the new pod one never does
        now = time.time_ns()
        setup.loki.push(
            [
                ({"source": "pod", "service_name": "pod-hidden-svc", "run": run}, [(now, "PODLINE live")]),
                ({"source": "gcs", "service_name": "trades", "run": run}, [(now + SECOND // 10, "gcs live")]),
            ]
        )
        live_full = full.collect(2)
        assert {e["line"] for e in live_full} == {"PODLINE live", "gcs live"}
        live_scoped = scoped.collect(1) + scoped.collect(1, within=3.0)
        assert [e["line"] for e in live_scoped] == ["gcs live"]
    finally:
        errors = [tail.stop() for tail in (direct, full, scoped)]
    assert not any(leaks(text) for text in errors[2:])
