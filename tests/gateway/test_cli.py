"""`gateway keys new`, `gateway keys entry` and `gateway serve` (real processes for serve)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gateway.cli import _parser, main, parse_expiry
from gateway.security import KeyStore, generate_key
from tests.conftest import free_port, stop_process
from tests.gateway.conftest import make_settings

SERVE_START_TIMEOUT_SECONDS = 20.0


def _new_key(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    assert main(["keys", "new", *args]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    return lines[1], lines[-1]  # the key, then the YAML line


def test_keys_new_prints_the_key_once_and_a_yaml_line_that_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, yaml_line = _new_key(
        capsys, "--name", "grafana-agent", "--scope", "logs:read", "--scope", "summary",
        "--tenant", "team-a", "--label-policy", '{source="gcs", level=~"error|warn"}', "--expires", "30d",
    )
    assert key.startswith("gwk_")
    assert yaml_line.startswith("- {") and key not in yaml_line
    keys_path = tmp_path / "keys.yaml"
    keys_path.write_text(yaml_line + "\n")

    entry = KeyStore(make_settings(gateway_api_keys_file=keys_path)).match(key)
    assert entry is not None
    assert entry.name == "grafana-agent"
    assert entry.scopes == {"logs:read", "summary"}
    assert entry.tenant == "team-a"
    assert entry.label_policy == '{source="gcs", level=~"error|warn"}'
    assert entry.expires_at is not None
    assert timedelta(days=29) < entry.expires_at - datetime.now(UTC) <= timedelta(days=30)


def test_keys_new_generates_a_different_key_each_time(capsys: pytest.CaptureFixture[str]) -> None:
    first, _ = _new_key(capsys, "--name", "a", "--scope", "admin")
    second, _ = _new_key(capsys, "--name", "a", "--scope", "admin")
    assert first != second


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "a", "--scope", "root"],
        ["--name", "a"],
        ["--name", "a", "--scope", "admin", "--expires", "soon"],
    ],
)
def test_keys_new_rejects_bad_arguments(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["keys", "new", *args])
    assert exited.value.code == 2
    assert "error" in capsys.readouterr().err


def test_keys_new_rejects_a_label_policy_that_is_not_a_selector(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--name", "a", "--scope", "logs:read", "--label-policy", "source=gcs"]) == 2
    captured = capsys.readouterr()
    assert "stream selector" in captured.err
    assert "gwk_" not in captured.out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12h", datetime(2030, 1, 1, 12, tzinfo=UTC)),
        ("2w", datetime(2030, 1, 15, tzinfo=UTC)),
        ("2031-02-03", datetime(2031, 2, 3, tzinfo=UTC)),
        ("2031-02-03T04:05:06+02:00", datetime(2031, 2, 3, 2, 5, 6, tzinfo=UTC)),
    ],
)
def test_parse_expiry(text: str, expected: datetime) -> None:
    assert parse_expiry(text, now=datetime(2030, 1, 1, tzinfo=UTC)) == expected


def test_serve_defaults_to_localhost_8001() -> None:
    args = _parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8001)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("AI_MONITORING", "GATEWAY_"))}
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


def test_serve_without_keys_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(free_port())],
        env=_clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "no API keys configured" in result.stderr


@pytest.fixture
def served_gateway(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    key = generate_key()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=_clean_env(AI_MONITORING_API_KEY=key, LOKI_URL="http://127.0.0.1:9"),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", key, process
    finally:
        stop_process(process, kill_timeout=10)


Served = tuple[str, str, subprocess.Popen[str]]


def test_serve_answers_health_and_requires_the_key(served_gateway: Served) -> None:
    base, key, process = served_gateway
    deadline = time.monotonic() + SERVE_START_TIMEOUT_SECONDS
    while True:
        assert process.poll() is None, "gateway serve exited early"
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "gateway serve did not answer /health in time"
        time.sleep(0.2)
    assert httpx.get(f"{base}/api/monitoring/overview", timeout=5).status_code == 401
    overview = httpx.get(f"{base}/api/monitoring/overview", headers={"x-api-key": key}, timeout=10)
    assert overview.status_code == 200
    assert overview.json()["ops"]["loki"]["status"] == "down"
    stop_process(process)
    assert process.stdout is not None
    logged = [line for line in process.stdout.read().splitlines() if line.strip()]
    assert logged, "gateway serve logged nothing"
    records = [json.loads(line) for line in logged]  # one JSON object per line, like the shipper's
    assert {"ts", "level", "logger", "message"} <= records[0].keys()
    assert not any(r["logger"].startswith(("httpx", "httpcore")) for r in records)  # no URL per request
    assert key not in "\n".join(logged)


def test_keys_entry_prints_only_the_line_for_a_key_from_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "alertmanager-" + "k" * 40
    monkeypatch.setattr("sys.stdin", io.StringIO(key + "\n"))
    assert main(["keys", "entry", "--name", "alertmanager", "--scope", "alerts:write"]) == 0
    output = capsys.readouterr().out
    assert key not in output and output.count("\n") == 1
    keys_path = tmp_path / "keys.yaml"
    keys_path.write_text(output)
    entry = KeyStore(make_settings(gateway_api_keys_file=keys_path)).match(key)
    assert entry is not None and entry.scopes == {"alerts:write"}


@pytest.mark.parametrize("stdin", ["", "\n", "short-key\n", "k" * 40 + "\x00\n"])
def test_keys_entry_refuses_what_is_no_key(
    stdin: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(["keys", "entry", "--name", "a", "--scope", "alerts:write"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "stdin" in captured.err
