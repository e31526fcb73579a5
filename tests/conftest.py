from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.real_loki import LOKI_VERSION, RealLoki, find_loki_binary, own_loki

REAL_LOKI_MARK = "real_loki"
TOOLS = ("java", "gcloud", "kubectl", "promtool", "amtool", "prometheus", "prometheus-alertmanager",
         "docker-compose", "redis-server")


def pytest_report_header(config: object) -> list[str]:
    """Show which external tools this run has, so CI output proves tool-backed tests ran."""
    found = {tool: shutil.which(tool) for tool in TOOLS}
    loki = find_loki_binary()
    return [
        f"real Loki: {loki} (tested with {LOKI_VERSION})" if loki
        else "real Loki: absent (set LOKI_BINARY; its tests skip with that reason)",
        "tools present: " + ", ".join(t for t, p in found.items() if p),
        "tools absent (their tests skip with a reason): "
        + (", ".join(t for t, p in found.items() if not p) or "none"),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clear_of_a_minute_boundary(margin_seconds: float = 5.0) -> None:
    """Waits for the next minute when fewer than `margin_seconds` are left of this one. The gateway's
    in-memory rate limiter (limits' sliding-window counter) weighs the previous wall-clock minute's
    hits by how much of it is left, so a burst that straddles a minute is not exactly counted."""
    left = 60 - time.time() % 60
    if left < margin_seconds:
        time.sleep(left + 0.05)


def stop_process(process: subprocess.Popen[Any], timeout: float = 10, kill_timeout: float = 5) -> None:
    """Terminate `process`; kill it if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=kill_timeout)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{REAL_LOKI_MARK}: runs against the real Loki binary (LOKI_BINARY)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses a real-Loki fixture carries the mark, so the summary can count them."""
    for item in items:
        if "real_loki" in getattr(item, "fixturenames", ()):
            item.add_marker(REAL_LOKI_MARK)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    counts: dict[str, int] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if REAL_LOKI_MARK in getattr(report, "keywords", {}) and report.when in ("call", "setup"):
                if outcome == "passed" and report.when != "call":
                    continue
                counts[outcome] = counts.get(outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items()) or "none collected"
    terminalreporter.write_line(f"real-Loki tests: {summary}")


@pytest.fixture(scope="session")
def real_loki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealLoki]:
    """One real Loki for the whole session, from ops-stack/loki/loki.yaml; isolate by run_id() labels."""
    yield from own_loki(tmp_path_factory, "real-loki", ())


@pytest.fixture(autouse=True)
def loki_network_for_mocks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway reaches Loki through aiohttp (gateway.wiring.LOKI_NETWORK). respx mocks httpx's
    own network layer, httpcore, so a test without the real Loki (its Loki is a respx mock or a
    stand-in) has the gateway reach Loki through httpcore; tests with the real Loki, and the real
    servers that stand in front of it (DelayingLoki), keep aiohttp."""
    if "real_loki" in request.fixturenames:
        return
    import httpx

    import gateway.wiring

    monkeypatch.setattr(gateway.wiring, "LOKI_NETWORK", httpx.AsyncHTTPTransport)
