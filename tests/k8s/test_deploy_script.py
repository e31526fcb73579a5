"""scripts/deploy.sh against a fake `kubectl` on PATH that records its arguments."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "deploy.sh"
BASH = shutil.which("bash") or "/bin/bash"

# One line per call, arguments separated by tabs. FAKE_FAIL=<word>: exit 1 when an argument
# equals <word>; FAKE_DIFF_EXIT: exit status of `kubectl diff`.
FAKE_KUBECTL = """#!/bin/sh
out=""
for arg in "$@"; do out="${out}${out:+\t}${arg}"; done
printf '%b\\n' "$out" >> "$FAKE_LOG"
for arg in "$@"; do
  [ -n "$FAKE_FAIL" ] && [ "$arg" = "$FAKE_FAIL" ] && { echo "fake failure" >&2; exit 1; }
done
[ "$1" = diff ] || [ "$3" = diff ] && exit "${FAKE_DIFF_EXIT:-0}"
exit 0
"""


@pytest.fixture
def fake(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "FAKE_LOG": str(log)}
    return env, log


def run(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(SCRIPT), *args], env={**env, **extra},
                          capture_output=True, text=True, timeout=30, check=False)


def calls(log: Path) -> list[list[str]]:
    return [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []


def test_script_parses() -> None:
    subprocess.run([BASH, "-n", str(SCRIPT)], check=True, timeout=10)
    assert os.access(SCRIPT, os.X_OK), "scripts/deploy.sh should be executable"


@pytest.mark.parametrize(("args", "message"), [
    ((), "missing overlay"),
    (("qa",), "unknown overlay: 'qa'"),
    (("../base",), "unknown overlay"),
    (("dev", "prod"), "only one overlay"),
    (("--force", "dev"), "unknown option: --force"),
    (("--timeout", "soon", "dev"), "bad --timeout"),
    (("--context",), "--context needs a name"),
])
def test_bad_arguments_exit_2_without_calling_kubectl(
    fake: tuple[dict[str, str], Path], args: tuple[str, ...], message: str
) -> None:
    env, log = fake
    result = run(env, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "usage:" in result.stderr
    assert calls(log) == []


@pytest.mark.parametrize("overlay", ["dev", "staging", "prod"])
def test_apply_then_wait_for_every_rollout(fake: tuple[dict[str, str], Path], overlay: str) -> None:
    env, log = fake
    result = run(env, overlay)
    assert result.returncode == 0, result.stderr
    assert calls(log) == [
        ["apply", "-k", str(ROOT / "k8s" / "overlays" / overlay)],
        ["-n", "gpt", "rollout", "status", "deployment/loki-gateway-redis", "--timeout=300s"],
        ["-n", "gpt", "rollout", "status", "deployment/gateway", "--timeout=300s"],
        ["-n", "gpt", "rollout", "status", "deployment/shipper", "--timeout=300s"],
    ]


def test_dry_run_applies_client_side_only(fake: tuple[dict[str, str], Path]) -> None:
    env, log = fake
    result = run(env, "--dry-run", "prod")
    assert result.returncode == 0, result.stderr
    assert calls(log) == [["apply", "-k", str(ROOT / "k8s/overlays/prod"), "--dry-run=client"]]


@pytest.mark.parametrize(("diff_exit", "expected"), [("0", 0), ("1", 0), ("2", 1)])
def test_diff_mode(fake: tuple[dict[str, str], Path], diff_exit: str, expected: int) -> None:
    env, log = fake
    result = run(env, "--diff", "staging", FAKE_DIFF_EXIT=diff_exit)
    assert result.returncode == expected, result.stderr
    assert calls(log) == [["diff", "-k", str(ROOT / "k8s/overlays/staging")]]


def test_context_and_timeout_are_passed_to_every_call(fake: tuple[dict[str, str], Path]) -> None:
    env, log = fake
    result = run(env, "--context", "gke_p_europe-west1_main", "--timeout=10m", "dev")
    assert result.returncode == 0, result.stderr
    recorded = calls(log)
    assert len(recorded) == 4
    assert all(call[:2] == ["--context", "gke_p_europe-west1_main"] for call in recorded)
    assert all(call[-1] == "--timeout=10m" for call in recorded[1:])


def test_failed_apply_stops_before_rollout(fake: tuple[dict[str, str], Path]) -> None:
    env, log = fake
    result = run(env, "prod", FAKE_FAIL="apply")
    assert result.returncode != 0
    assert [call[0] for call in calls(log)] == ["apply"]


def test_failed_rollout_exits_1_and_names_the_deployment(fake: tuple[dict[str, str], Path]) -> None:
    env, log = fake
    result = run(env, "prod", FAKE_FAIL="deployment/gateway")
    assert result.returncode == 1
    assert "deployment/gateway" in result.stderr
    assert len(calls(log)) == 3  # apply, Redis and gateway rollouts; the shipper is not waited for


def test_missing_kubectl_is_reported(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = subprocess.run([BASH, str(SCRIPT), "dev"], env={"PATH": str(empty)},
                            capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 1
    assert "kubectl not found" in result.stderr
