"""End to end with a real Alertmanager (Debian `prometheus-alertmanager`): an alert posted to its
API v2 reaches the gateway's webhook with Alertmanager's own credentials (`Authorization: ApiKey`),
the gateway stores it, writes a kind="alert" event and forwards it to a local receiver; resolving
the alert updates the same entry. The gateway runs under uvicorn; one small local HTTP server
stands in for Loki (push, query_range) and for the receiver."""

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
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
import yaml

from gateway.main import create_app
from gateway.security import generate_key
from tests.conftest import free_port, stop_process
from tests.gateway.conftest import make_settings

pytestmark = pytest.mark.tool

WAIT_SECONDS = 30
ALERT_LABELS = {
    "alertname": "PodCrashPatterns",
    "severity": "warning",
    "source": "pod",
    "namespace": "gpt",
    "pod": "runner-7d9f",
    "service_name": "runner",
}


class Recorder(ThreadingHTTPServer):
    """Loki's push and query_range, plus a webhook receiver; it records every request."""

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.received: list[tuple[str, str, Any]] = []  # (method, path, body or query)
        self.lock = threading.Lock()

    def bodies(self, path: str) -> list[Any]:
        with self.lock:
            return [body for _, p, body in self.received if p == path]


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        with self.server.lock:
            self.server.received.append(("POST", self.path, body))
        self._reply(
            204 if self.path == "/loki/api/v1/push" else 200, None if self.path.startswith("/loki") else {}
        )

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.server.lock:
            self.server.received.append(("GET", url.path, query))
        if url.path != "/loki/api/v1/query_range":
            self._reply(404, {})
            return
        start = int(query["start"])
        values = [
            [str(start + i * 1_000_000_000), f"panic: runtime error: index out of range [{i}]"]
            for i in range(12)
        ]
        stream = {
            "source": "pod",
            "namespace": "gpt",
            "pod": "runner-7d9f",
            "service_name": "runner",
            "level": "error",
        }
        self._reply(
            200,
            {
                "status": "success",
                "data": {"resultType": "streams", "result": [{"stream": stream, "values": values}]},
            },
        )


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
def gateway(recorder: Recorder) -> Iterator[tuple[str, str]]:
    key = generate_key()
    base = f"http://127.0.0.1:{recorder.server_address[1]}"
    app = create_app(
        make_settings(
            ai_monitoring_api_key=key,
            loki_url=base,
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


def post_alert(alertmanager: str, ends_at: datetime, starts_at: datetime) -> None:
    body = [
        {
            "labels": ALERT_LABELS,
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
    alertmanager: str, gateway: tuple[str, str], recorder: Recorder
) -> None:
    starts_at = datetime.now(UTC) - timedelta(seconds=30)
    post_alert(alertmanager, ends_at=starts_at + timedelta(hours=1), starts_at=starts_at)

    forwarded = wait_for(
        lambda: [b for b in recorder.bodies("/receiver") if b["status"] == "firing"],
        "the forwarded firing alert",
    )
    alert = forwarded[0]["alerts"][0]
    assert alert["labels"] == ALERT_LABELS
    assert (
        alert["context"]["selector"]
        == '{source="pod", service_name="runner", namespace="gpt", pod="runner-7d9f"}'
    )
    assert alert["context"]["top_templates"][0]["count"] == 12
    fingerprint = alert["fingerprint"]

    stored = wait_for(lambda: stored_alerts(gateway, "firing"), "the stored firing alert")
    assert [a["fingerprint"] for a in stored] == [fingerprint]
    assert stored[0]["forwarded"] == {"webhook": "ok"}

    events = [s for body in recorder.bodies("/loki/api/v1/push") for s in body["streams"]]
    assert events and events[0]["stream"] == {
        "source": "gateway",
        "service_name": "gateway",
        "kind": "alert",
        "level": "warn",
    }
    assert json.loads(events[0]["values"][0][1])["fingerprint"] == fingerprint

    post_alert(alertmanager, ends_at=datetime.now(UTC) - timedelta(seconds=1), starts_at=starts_at)
    wait_for(
        lambda: [b for b in recorder.bodies("/receiver") if b["status"] == "resolved"], "the resolved alert"
    )
    resolved = wait_for(lambda: stored_alerts(gateway, "resolved"), "the stored entry to resolve")
    assert [a["fingerprint"] for a in resolved] == [fingerprint]
    assert resolved[0]["notifications"] >= 2 and resolved[0]["ends_at"]
    assert stored_alerts(gateway, "firing") == []
    assert len(stored_alerts(gateway, "all")) == 1
