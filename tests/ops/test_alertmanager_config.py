"""ops-stack/alertmanager/alertmanager.yml: valid for the real amtool, routed to the gateway's
webhook, credentials only from a file."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from gateway.config import DEFAULT_PORT as GATEWAY_PORT
from tests.conftest import free_port, stop_process
from tests.ops.conftest import DESIGN, REPO, RenderedCompose, load_yaml, require_tool

pytestmark = pytest.mark.tool

CONFIG = REPO / "ops-stack/alertmanager/alertmanager.yml"
AMTOOL_TIMEOUT_SECONDS = 30
START_TIMEOUT_SECONDS = 30
DELIVERY_TIMEOUT_SECONDS = 20
# Fields that would hold a credential inline rather than in a file.
INLINE_SECRETS = {"credentials", "password", "bearer_token", "api_url", "auth_password", "values", "secrets"}


def amtool_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("amtool"), "check-config", str(path)], capture_output=True,
                          text=True, timeout=AMTOOL_TIMEOUT_SECONDS, check=False)


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load_yaml(CONFIG)


def test_amtool_accepts_the_config() -> None:
    result = amtool_check(CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_would_catch_a_broken_route(tmp_path, config) -> None:
    broken = dict(config, route=dict(config["route"], receiver="nobody"))
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(broken))
    assert amtool_check(path).returncode != 0


def test_everything_reaches_the_gateway_webhook(config) -> None:
    design = DESIGN.read_text() if DESIGN.is_file() else ""
    design_path = re.search(r"POST (/api/monitoring/alerts/webhook)", design)
    expected_path = design_path[1] if design_path else "/api/monitoring/alerts/webhook"
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    assert config["route"]["receiver"] == "gateway"
    for route in config["route"].get("routes", []):
        assert route["receiver"] in receivers
    webhook = receivers["gateway"]["webhook_configs"][0]
    url = urlsplit(webhook["url"])
    assert (url.hostname, url.port, url.path) == ("gateway", GATEWAY_PORT, expected_path)
    assert webhook["send_resolved"] is True


def test_the_key_comes_from_a_file(config) -> None:
    auth = config["receivers"][0]["webhook_configs"][0]["http_config"]["authorization"]
    assert auth["type"] == "ApiKey", "the gateway accepts `Authorization: ApiKey <key>` (DESIGN.md)"
    assert auth["credentials_file"].startswith("/run/")
    for path, _value in walk(config):
        assert path.rsplit(".", 1)[-1] not in INLINE_SECRETS, f"inline credential at {path}"


def test_slack_and_email_examples_are_shown_and_file_based() -> None:
    text = CONFIG.read_text()
    assert "slack_configs" in text and "email_configs" in text
    assert "api_url_file" in text and "auth_password_file" in text


def test_compose_mounts_this_config(rendered_compose: RenderedCompose) -> None:
    service = rendered_compose.config["services"]["alertmanager"]
    mounts = rendered_compose.mounts("alertmanager")
    assert mounts["/etc/alertmanager/alertmanager.yml"] == str(CONFIG)
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in " ".join(service["command"])


# --- the real Alertmanager sends what the gateway expects ---------------------------------------

class _Capture(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], dict[str, Any]]]]]:
    received: list[tuple[dict[str, str], dict[str, Any]]] = []
    handler = type("Capture", (_Capture,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def alertmanager_process(tmp_path) -> Iterator[Callable[[Path], str]]:
    started: list[subprocess.Popen[str]] = []

    def start(config: Path) -> str:
        port = free_port()
        log = (tmp_path / "alertmanager.log").open("w")
        process = subprocess.Popen(
            [require_tool("prometheus-alertmanager"), f"--config.file={config}",
             f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--cluster.listen-address="],
            stdout=log, stderr=subprocess.STDOUT, text=True)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Alertmanager did not start"
            time.sleep(0.2)

    yield start
    for process in started:
        stop_process(process)


def test_real_alertmanager_posts_v4_payload_with_the_key_from_the_file(
    tmp_path, config, webhook_receiver, alertmanager_process
) -> None:
    receiver_url, received = webhook_receiver
    key = secrets.token_urlsafe(32)
    key_file = tmp_path / "gateway-api-key"
    key_file.write_text(key)
    key_file.chmod(0o600)
    webhook = config["receivers"][0]["webhook_configs"][0]
    local = dict(config, route=dict(config["route"], group_wait="0s", group_interval="1s"))
    local["route"]["routes"] = [dict(r, group_wait="0s") for r in config["route"]["routes"]]
    path = urlsplit(webhook["url"]).path
    local["receivers"] = [{"name": "gateway", "webhook_configs": [dict(
        webhook, url=f"{receiver_url}{path}",
        http_config={"authorization": dict(webhook["http_config"]["authorization"],
                                           credentials_file=str(key_file))})]}]
    config_path = tmp_path / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(local))
    alertmanager = alertmanager_process(config_path)

    alert = {"labels": {"alertname": "ShipperStalled", "severity": "critical", "source": "gcs",
                        "service_name": "trades"},
             "annotations": {"summary": "no pass for 15 minutes"}}
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=5).status_code == 200
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
    while not received and time.monotonic() < deadline:
        time.sleep(0.2)
    assert received, "Alertmanager delivered nothing"
    headers, payload = received[0]
    assert headers["Authorization"] == f"ApiKey {key}"
    assert payload["version"] == "4" and payload["status"] == "firing"
    assert payload["alerts"][0]["labels"]["alertname"] == "ShipperStalled"
    assert set(payload["groupLabels"]) == set(config["route"]["group_by"])
    assert key not in (tmp_path / "alertmanager.log").read_text()


def _alert_severities() -> dict[str, str]:
    """alertname -> severity of every Prometheus and Loki ruler alert of the ops stack."""
    paths = [*(REPO / "ops-stack/prometheus/rules").glob("*.y*ml"),
             *(REPO / "ops-stack/loki/rules").glob("*/*.y*ml")]
    return {rule["alert"]: rule["labels"]["severity"]
            for path in paths for group in load_yaml(path)["groups"] for rule in group["rules"]}


def test_every_inhibit_rule_names_alerts_that_exist(config) -> None:
    severities = _alert_severities()
    assert config["inhibit_rules"]
    for rule in config["inhibit_rules"]:
        for side, severity in (("source_matchers", "critical"), ("target_matchers", "warning")):
            names = [m.split("=", 1)[1].strip('"') for m in rule[side] if m.startswith("alertname=")]
            assert names and all(severities.get(name) == severity for name in names), (side, rule)


def test_real_alertmanager_lets_the_critical_twin_silence_the_warning(
    tmp_path, config, webhook_receiver, alertmanager_process
) -> None:
    receiver_url, _ = webhook_receiver
    local = dict(config, receivers=[{"name": "gateway", "webhook_configs": [{"url": receiver_url}]}])
    config_path = tmp_path / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(local))
    alertmanager = alertmanager_process(config_path)

    def alert(name: str, severity: str, source: str) -> dict[str, Any]:
        return {"labels": {"alertname": name, "severity": severity, "source": source}}

    alerts = [alert("ShipperCheckpointLagCritical", "critical", "gcs"),
              alert("ShipperCheckpointLagHigh", "warning", "gcs"),
              alert("ShipperCheckpointLagHigh", "warning", "pods")]  # no critical twin: stays active
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=5).status_code == 200

    def states() -> dict[tuple[str, str], str]:
        answer = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
        return {(a["labels"]["alertname"], a["labels"]["source"]): a["status"]["state"] for a in answer}

    expected = {("ShipperCheckpointLagCritical", "gcs"): "active",
                ("ShipperCheckpointLagHigh", "gcs"): "suppressed",
                ("ShipperCheckpointLagHigh", "pods"): "active"}
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
    while states() != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert states() == expected
