"""The ruler path for real: crash lines planted in a real Loki make the project's own rule
PodCrashPatterns (ops-stack/loki/rules/fake/logs.yaml, unchanged: it has no `for`, so it fires at
its group's first evaluation that sees them) fire; Loki's ruler sends the alert to a real
Alertmanager (Debian's), configured from ops-stack/alertmanager/alertmanager.yml with only the
gateway's address and the key file changed; Alertmanager posts it to the webhook of a real gateway
(uvicorn) reading that same Loki, which lists it as firing with its log context.

This Loki is the module's own (the session one's ruler points nowhere), started with the
Alertmanager's URL and a short rule poll interval; the rule group's own `interval: 1m` and the
route's `group_wait: 30s` are kept, so the test takes up to about two minutes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
import yaml

from gateway.main import create_app
from gateway.security import generate_key, hash_key
from tests.conftest import REAL_LOKI_MARK, free_port, stop_process
from tests.gateway.conftest import make_settings
from tests.real_loki import LOKI_CONFIG, LOKI_RULES, RealLoki, find_loki_binary, run_id, start_loki

pytestmark = [pytest.mark.tool, getattr(pytest.mark, REAL_LOKI_MARK)]

REPO = Path(__file__).resolve().parents[2]
ALERTMANAGER_CONFIG = REPO / "ops-stack" / "alertmanager" / "alertmanager.yml"
RULE = "PodCrashPatterns"
# first evaluation of a 1m group (<= 60 s) + the route's group_wait (30 s) + the gateway's Loki reads
FIRING_TIMEOUT_SECONDS = 150
START_TIMEOUT_SECONDS = 20
CRASH_LINES = 12
OTHER_LINES = 8
LINES_BEFORE_SECONDS = 120  # well inside the rule's 10 m range and the gateway's context window


@dataclass(frozen=True)
class Stack:
    loki: RealLoki
    alertmanager: str
    gateway: str
    reader_key: str


def rule(name: str) -> dict[str, Any]:
    for path in sorted(LOKI_RULES.glob("*/*.y*ml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for found in group["rules"]:
                if found["alert"] == name:
                    return dict(found)
    raise AssertionError(f"no rule {name} under {LOKI_RULES}")


def loki_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(LOKI_CONFIG.read_text(encoding="utf-8"))
    return config


def alertmanager_config(gateway_url: str, key_file: Path) -> dict[str, Any]:
    """The project's Alertmanager config with each webhook's host and key file made local."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    hooks = [hook for receiver in config["receivers"] for hook in receiver.get("webhook_configs", [])]
    assert hooks, "the project's Alertmanager has no webhook receiver"
    for hook in hooks:
        hook["url"] = gateway_url + urlsplit(hook["url"]).path
        hook["http_config"]["authorization"]["credentials_file"] = str(key_file)
    return config


def wait_for(condition: Callable[[], Any], what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


@pytest.fixture(scope="module")
def alertmanager_binary() -> str:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip("prometheus-alertmanager not installed (Debian package `prometheus-alertmanager`)")
    return binary


@pytest.fixture(scope="module")
def loki_binary() -> str:
    binary = find_loki_binary()
    if binary is None:
        pytest.skip("no Loki binary: set LOKI_BINARY or put loki on PATH (.ci/run uses ../shared/tools/loki)")
    return binary


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, alertmanager_binary: str,
          loki_binary: str) -> Iterator[Stack]:
    """Alertmanager -> gateway (port chosen first), then Loki -> Alertmanager, then the gateway -> Loki."""
    workdir = tmp_path_factory.mktemp("ruler-e2e")
    alertmanager_key, reader_key = generate_key(), generate_key()
    keys_file = workdir / "api-keys.yaml"
    keys_file.write_text(yaml.safe_dump([
        {"name": "alertmanager", "sha256": hash_key(alertmanager_key), "scopes": ["alerts:write"]},
        {"name": "agent", "sha256": hash_key(reader_key), "scopes": ["alerts:read", "logs:read"]},
    ]), encoding="utf-8")
    key_file = workdir / "gateway-api-key"
    key_file.write_text(alertmanager_key, encoding="utf-8")
    key_file.chmod(0o600)
    gateway_port, alertmanager_port = free_port(), free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(alertmanager_config(gateway_url, key_file)), encoding="utf-8")
    alertmanager_url = f"http://127.0.0.1:{alertmanager_port}"
    alertmanager = subprocess.Popen(
        [alertmanager_binary, f"--config.file={config_file}", f"--storage.path={workdir / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{alertmanager_port}", "--cluster.listen-address=",
         "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=(workdir / "alertmanager.log").open("wb"),
    )
    loki: RealLoki | None = None
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    try:
        def alertmanager_ready() -> bool:
            assert alertmanager.poll() is None, (workdir / "alertmanager.log").read_text()[-2000:]
            try:
                return httpx.get(f"{alertmanager_url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(alertmanager_ready, "Alertmanager to be ready", START_TIMEOUT_SECONDS)
        loki = start_loki(loki_binary, workdir / "loki", alertmanager_url=alertmanager_url,
                          extra_flags=["-ruler.poll-interval=2s", "-ruler.resend-delay=5s"])
        app = create_app(make_settings(gateway_api_keys_file=keys_file, loki_url=loki.url))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=gateway_port,
                                               log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_for(lambda: server is not None and server.started, "the gateway to start", START_TIMEOUT_SECONDS)
        yield Stack(loki, alertmanager_url, gateway_url, reader_key)
    finally:
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=10)
        if loki is not None:
            loki.stop()
        stop_process(alertmanager)


def firing(stack: Stack, namespace: str) -> list[dict[str, Any]]:
    """The gateway's firing alerts of this namespace whose log context has been read."""
    response = httpx.get(f"{stack.gateway}/api/monitoring/alerts", params={"status": "firing"},
                         headers={"x-api-key": stack.reader_key}, timeout=5)
    assert response.status_code == 200, response.text
    return [alert for alert in response.json()["alerts"]
            if alert["labels"].get("namespace") == namespace and alert.get("context") is not None]


def test_a_loki_rule_fires_through_alertmanager_into_the_gateway_with_log_context(stack: Stack) -> None:
    started = time.monotonic()
    run = run_id("crash")
    pod = f"{run}-0"
    labels = {"source": "pod", "service_name": run, "namespace": run, "pod": pod,
              "container": "runner", "level": "error"}
    base = time.time_ns() - LINES_BEFORE_SECONDS * 1_000_000_000
    crash = [(base + i * 1_000_000_000, f"panic: runtime error: index out of range [{i}]")
             for i in range(CRASH_LINES)]
    other = [(base + (CRASH_LINES + i) * 1_000_000_000, f"restarting worker {i} after 5s")
             for i in range(OTHER_LINES)]
    stack.loki.push([(labels, crash + other)])

    alerts = wait_for(lambda: firing(stack, run), f"{RULE} to reach the gateway", FIRING_TIMEOUT_SECONDS)
    elapsed = time.monotonic() - started
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    # the rule's own labels and Loki's rendering of its annotations
    assert alert["labels"] == {"alertname": RULE, "severity": rule(RULE)["labels"]["severity"],
                               "namespace": run, "pod": pod, "service_name": run}
    assert alert["annotations"]["summary"] == (
        f"Pod {run}/{pod} logs crash-like lines ({CRASH_LINES} in 10 minutes)")
    assert alert["status"] == "firing" and alert["starts_at"] and alert["ends_at"] is None
    assert alert["receiver"] == "gateway"  # the project's route, unchanged
    # Loki's ruler links to Grafana's Explore on the rule's expression with the Loki datasource
    # (loki.yaml's ruler external_url and datasource_uid; without them a bare "/explore?...")
    link = urlsplit(alert["generator_url"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{loki_config()['ruler']['external_url']}/explore"
    explore = json.loads(parse_qs(link.query)["left"][0])["queries"][0]
    assert explore["datasource"] == {"type": "loki", "uid": "loki"}, explore
    assert "count_over_time" in explore["expr"], explore
    # the log context, read by the gateway from the same real Loki
    context = alert["context"]
    assert context["selector"] == f'{{service_name="{run}", namespace="{run}", pod="{pod}"}}'
    assert context["lines_read"] == CRASH_LINES + OTHER_LINES, context
    top = context["top_templates"][0]
    assert top["count"] == CRASH_LINES and "panic: runtime error" in top["template"], context["top_templates"]

    # Alertmanager holds it, and the gateway wrote its kind="alert" event into Loki
    held = httpx.get(f"{stack.alertmanager}/api/v2/alerts", params={"filter": f'namespace="{run}"'},
                     timeout=5)
    assert [a["labels"]["alertname"] for a in held.json()] == [RULE]
    events = wait_for(lambda: stack.loki.all_lines(
        f'{{source="gateway", kind="alert"}} |= `{alert["fingerprint"]}`',
        start_ns=base, end_ns=time.time_ns() + 1), "the gateway's alert event in Loki", 15)
    assert '"status":"firing"' in events[0].replace(" ", "")
    print(f"{RULE} reached the gateway {elapsed:.0f}s after the lines were pushed")
