"""End to end with a real Alertmanager (Debian `prometheus-alertmanager`): an alert posted to its
API v2 reaches the gateway's webhook with Alertmanager's own credentials (`Authorization: ApiKey`),
the gateway stores it, reads its log context from the real Loki (session fixture `real_loki`),
writes a kind="alert" event there and forwards it to a local receiver; resolving the alert updates
the same entry. The gateway runs under uvicorn; one small local HTTP server stands in for the
receiver. (test_loki_ruler_e2e.py has Loki's ruler raise the alert itself.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from gateway.main import create_app
from gateway.security import generate_key
from tests.conftest import free_port, stop_process
from tests.gateway.conftest import make_settings
from tests.real_loki import RealLoki, run_id

pytestmark = pytest.mark.tool

WAIT_SECONDS = 30
CRASH_LINES = 12


@pytest.fixture
def alert_labels() -> dict[str, str]:
    """This test's own namespace and pod, so the session Loki's other lines stay out of its context."""
    namespace = run_id("am")
    return {
        "alertname": "PodCrashPatterns",
        "severity": "warning",
        "source": "pod",
        "namespace": namespace,
        "pod": f"{namespace}-7d9f",
        "service_name": "runner",
    }


class Recorder(ThreadingHTTPServer):
    """The forwarding receiver: records every body posted to it."""

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.received: list[tuple[str, str, Any]] = []  # (method, path, body)
        self.lock = threading.Lock()

    def bodies(self, path: str) -> list[Any]:
        with self.lock:
            return [body for _, p, body in self.received if p == path]


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        with self.server.lock:
            self.server.received.append(("POST", self.path, body))
        data = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder(free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def gateway(recorder: Recorder, real_loki: RealLoki) -> Iterator[tuple[str, str]]:
    key = generate_key()
    base = f"http://127.0.0.1:{recorder.server_address[1]}"
    app = create_app(
        make_settings(
            ai_monitoring_api_key=key,
            loki_url=real_loki.url,
            alert_forward_webhook_url=f"{base}/receiver",
        )
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, "the gateway to start", timeout=15)
        yield f"http://127.0.0.1:{port}", key
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def alertmanager(tmp_path: Path, gateway: tuple[str, str]) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip("prometheus-alertmanager not installed (Debian package `prometheus-alertmanager`)")
    gateway_url, key = gateway
    config = {
        "route": {
            "receiver": "gateway",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "gateway",
                "webhook_configs": [
                    {
                        "url": f"{gateway_url}/api/monitoring/alerts/webhook",
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "ApiKey", "credentials": key}},
                    }
                ],
            }
        ],
    }
    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"alertmanager exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, "alertmanager to be ready", timeout=20)
        yield url
    finally:
        stop_process(process)


def post_alert(alertmanager: str, labels: dict[str, str], ends_at: datetime, starts_at: datetime) -> None:
    body = [
        {
            "labels": labels,
            "annotations": {"summary": "runner pods panic"},
            "startsAt": starts_at.isoformat(),
            "endsAt": ends_at.isoformat(),
            "generatorURL": "http://loki.test/rules",
        }
    ]
    response = httpx.post(f"{alertmanager}/api/v2/alerts", json=body, timeout=5)
    assert response.status_code == 200, response.text


def stored_alerts(gateway: tuple[str, str], status: str = "all") -> list[dict[str, Any]]:
    url, key = gateway
    response = httpx.get(
        f"{url}/api/monitoring/alerts", params={"status": status}, headers={"x-api-key": key}, timeout=5
    )
    assert response.status_code == 200, response.text
    return response.json()["alerts"]  # type: ignore[no-any-return]


def test_alert_flows_from_alertmanager_through_the_gateway_and_resolves(
    alertmanager: str, gateway: tuple[str, str], recorder: Recorder, real_loki: RealLoki,
    alert_labels: dict[str, str],
) -> None:
    starts_at = datetime.now(UTC) - timedelta(seconds=30)
    stream = {name: alert_labels[name] for name in ("source", "service_name", "namespace", "pod")}
    first_ns = time.time_ns() - 60 * 1_000_000_000
    real_loki.push([({**stream, "container": "runner", "level": "error"}, [
        (first_ns + i * 1_000_000_000, f"panic: runtime error: index out of range [{i}]")
        for i in range(CRASH_LINES)
    ])])
    post_alert(alertmanager, alert_labels, ends_at=starts_at + timedelta(hours=1), starts_at=starts_at)

    forwarded = wait_for(
        lambda: [b for b in recorder.bodies("/receiver") if b["status"] == "firing"],
        "the forwarded firing alert",
    )
    alert = forwarded[0]["alerts"][0]
    assert alert["labels"] == alert_labels
    namespace, pod = alert_labels["namespace"], alert_labels["pod"]
    assert (
        alert["context"]["selector"]
        == f'{{source="pod", service_name="runner", namespace="{namespace}", pod="{pod}"}}'
    )
    assert alert["context"]["lines_read"] == CRASH_LINES
    assert alert["context"]["top_templates"][0]["count"] == CRASH_LINES
    fingerprint = alert["fingerprint"]

    stored = wait_for(lambda: stored_alerts(gateway, "firing"), "the stored firing alert")
    assert [a["fingerprint"] for a in stored] == [fingerprint]
    assert stored[0]["forwarded"] == {"webhook": "ok"}

    def events() -> list[dict[str, Any]]:
        data = real_loki.query_range(f'{{source="gateway", kind="alert"}} |= `{fingerprint}`',
                                     start_ns=first_ns, end_ns=time.time_ns() + 1)
        return list(data["result"])

    found = wait_for(events, "the gateway's alert event in Loki")
    assert [s["stream"] for s in found] == [{
        "source": "gateway",
        "service_name": "gateway",
        "kind": "alert",
        "level": "warn",
    }]
    assert json.loads(found[0]["values"][0][1])["fingerprint"] == fingerprint

    post_alert(alertmanager, alert_labels, ends_at=datetime.now(UTC) - timedelta(seconds=1),
               starts_at=starts_at)
    wait_for(
        lambda: [b for b in recorder.bodies("/receiver") if b["status"] == "resolved"], "the resolved alert"
    )
    resolved = wait_for(lambda: stored_alerts(gateway, "resolved"), "the stored entry to resolve")
    assert [a["fingerprint"] for a in resolved] == [fingerprint]
    assert resolved[0]["notifications"] >= 2 and resolved[0]["ends_at"]
    assert stored_alerts(gateway, "firing") == []
    assert len(stored_alerts(gateway, "all")) == 1
