"""Configuration mistakes end in exit 2 and one clear line naming what to fix: never a traceback,
never a retry loop. Real processes, as an operator runs them."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXIT_CONFIG = 2
FAST_SECONDS = 2.0


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = ("PATH", "PYTHONPATH", "LANG", "LC_ALL")
    env = {k: v for k, v in os.environ.items() if k in keep}
    # no Google credentials of this machine, and no metadata server to wait for
    env.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), NO_GCE_CHECK="True",
               GCE_METADATA_HOST="127.0.0.1:9", SHIPPER_STATE_DIR=str(tmp_path / "state"))
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    command = args if args[0] == "-c" else ["-m", *args]
    result = subprocess.run([sys.executable, *command], env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=60, check=False)
    return result, time.monotonic() - started


def _assert_clean_config_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == EXIT_CONFIG, output
    assert "Traceback" not in output, output
    for word in words:
        assert word in output, output


@pytest.mark.parametrize("url", ["notaurl", "loki:3100", "ftp://loki:3100"])
def test_shipper_once_with_a_bad_loki_url_exits_2_at_once(tmp_path: Path, url: str) -> None:
    # the command's own work is timed in its process, apart from the interpreter's start-up and
    # imports, which a busy machine stretches
    timed = "import sys, time; from shipper.cli import main; t = time.monotonic(); code = main(['once']); " \
        "print(f'WORK {time.monotonic() - t:.3f}', file=sys.stderr); raise SystemExit(code)"
    result, took = _run(["-c", timed], _env(tmp_path, LOKI_URL=url, GCS_BUCKET_NAME="b"), tmp_path)
    _assert_clean_config_error(result, "LOKI_URL", "http")
    work = float(result.stderr.rsplit("WORK ", 1)[1])
    assert work < 0.5  # no retrying at all (each retry first backs off 0.25 s or more)
    assert took < FAST_SECONDS * 2


def test_errors_name_the_environment_variable_not_the_field(tmp_path: Path) -> None:
    result, _ = _run(["shipper", "once"], _env(tmp_path, SHIPPER_INTERVAL_SECONDS="0"), tmp_path)
    _assert_clean_config_error(result, "SHIPPER_INTERVAL_SECONDS", "greater than 0", "'0'")
    assert "shipper_interval_seconds" not in result.stderr


def test_malformed_sources_yaml_names_the_line(tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - type: gcs\n    bucket: [unclosed\n")
    result, _ = _run(["shipper", "once"], _env(tmp_path, SHIPPER_CONFIG_FILE=str(sources)), tmp_path)
    _assert_clean_config_error(result, "not valid YAML", "line")


def test_a_typo_in_the_sources_file_is_an_error_not_a_default(tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - type: gcs\n    bucket: b\n    prefix: [trades/]\n")
    result, _ = _run(["shipper", "check"], _env(tmp_path, SHIPPER_CONFIG_FILE=str(sources)), tmp_path)
    assert "prefix" in result.stdout and "Extra inputs are not permitted" in result.stdout
    result, _ = _run(["shipper", "once"], _env(tmp_path, SHIPPER_CONFIG_FILE=str(sources)), tmp_path)
    _assert_clean_config_error(result, "sources[0].gcs.prefix", "Extra inputs are not permitted")


def test_sources_file_and_source_variables_together_are_refused(tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - type: gcs\n    bucket: b\n")
    env = _env(tmp_path, SHIPPER_CONFIG_FILE=str(sources), GCS_BUCKET_NAME="other")
    result, _ = _run(["shipper", "once"], env, tmp_path)
    _assert_clean_config_error(result, "SHIPPER_CONFIG_FILE", "GCS_BUCKET_NAME")


def test_busy_metrics_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        env = _env(tmp_path, GCS_BUCKET_NAME="b", STORAGE_EMULATOR_HOST="http://127.0.0.1:9",
                   SHIPPER_METRICS_PORT=str(port))
        result, _ = _run(["shipper", "run"], env, tmp_path)
    _assert_clean_config_error(result, "SHIPPER_METRICS_PORT", str(port))


def test_run_without_google_credentials_says_where_they_come_from(tmp_path: Path) -> None:
    result, took = _run(["shipper", "run"], _env(tmp_path, GCS_BUCKET_NAME="my-bucket"), tmp_path)
    _assert_clean_config_error(result, "GOOGLE_APPLICATION_CREDENTIALS",
                               "gcloud auth application-default login", "Workload Identity")
    assert took < FAST_SECONDS * 2  # google-auth looks for credentials in several places first


def test_run_without_kubernetes_access_says_how_to_give_it(tmp_path: Path) -> None:
    env = _env(tmp_path, KUBERNETES_ENABLED="true", KUBECONFIG=str(tmp_path / "none"))
    result, _ = _run(["shipper", "run"], env, tmp_path)
    _assert_clean_config_error(result, "Kubernetes", "KUBECONFIG")


@pytest.mark.parametrize(("variable", "value"), [("RATE_LIMIT", "abc"), ("LOKI_URL", "loki:3100")])
def test_gateway_refuses_bad_settings_naming_them(tmp_path: Path, variable: str, value: str) -> None:
    env = _env(tmp_path, AI_MONITORING_API_KEY=secrets.token_urlsafe(32), **{variable: value})
    result, took = _run(["gateway.cli", "serve", "--port", "9"], env, tmp_path)
    _assert_clean_config_error(result, variable)
    assert env["AI_MONITORING_API_KEY"] not in result.stdout + result.stderr
    assert took < FAST_SECONDS * 5  # the gateway imports FastAPI and uvicorn first


@pytest.mark.parametrize("program", ["shipper", "gateway.cli"])
def test_version_and_help_listing_every_variable(tmp_path: Path, program: str) -> None:
    from gateway.config import GatewaySettings
    from shipper.config import ShipperSettings

    result, _ = _run([program, "--version"], _env(tmp_path), tmp_path)
    assert result.returncode == 0 and result.stdout.split()[1][0].isdigit(), result.stdout
    result, _ = _run([program, "--help"], _env(tmp_path), tmp_path)
    settings_class = ShipperSettings if program == "shipper" else GatewaySettings
    flat = " ".join(result.stdout.split())
    for name in settings_class.model_fields:
        assert name.upper() in flat
    assert "docs/settings.md" in flat
