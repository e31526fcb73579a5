"""ops-stack/prometheus/prometheus.yml: valid for the real promtool, and a real Prometheus using
its scrape jobs sees the series of a running shipper metrics endpoint and a running gateway."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.config import DEFAULT_PORT as GATEWAY_PORT
from shipper.config import DEFAULT_METRICS_PORT
from tests.conftest import free_port, stop_process
from tests.ops.conftest import REPO, RenderedCompose, load_yaml, require_tool

pytestmark = pytest.mark.tool

CONFIG = REPO / "ops-stack/prometheus/prometheus.yml"
PROMTOOL_TIMEOUT_SECONDS = 60
START_TIMEOUT_SECONDS = 30
SCRAPE_TIMEOUT_SECONDS = 45
POLL_SECONDS = 0.3
SHIPPED_LINES = 3

# A process exposing shipper.metrics.REGISTRY the way `shipper run` does, with known values.
SHIPPER_EXPORTER = f"""
import sys, time
from shipper import metrics
metrics.LINES_SHIPPED.labels(source="gcs").inc({SHIPPED_LINES})
metrics.CHECKPOINT_LAG.labels(source="gcs").set(12.5)
metrics.PUSH_DURATION.observe(0.02)
metrics.serve_metrics(int(sys.argv[1]), host="127.0.0.1")
while True:
    time.sleep(1)
"""

# The real gateway application, as `gateway serve` builds it.
GATEWAY_APP = """
import sys, uvicorn
from gateway.config import GatewaySettings
from gateway.main import create_app
uvicorn.run(create_app(GatewaySettings()), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

@dataclass
class Started:
    process: subprocess.Popen[str]
    log: Path

    def failure(self, what: str) -> str | None:
        if self.process.poll() is None:
            return None
        return f"{what}: process exited with {self.process.returncode}: {self.log.read_text()[-2000:]}"


def wait_until(check: Callable[[], bool], timeout: float, what: str, started: Started | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if started is not None and (failure := started.failure(what)):
            pytest.fail(failure)
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(POLL_SECONDS)
    pytest.fail(f"{what}: not within {timeout}s")


def http_ok(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=2).status_code == 200


@pytest.fixture
def start_process(tmp_path) -> Iterator[Callable[..., Started]]:
    started: list[Started] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> Started:
        log = tmp_path / f"process-{len(started)}.log"
        with log.open("w") as output:
            process = subprocess.Popen(args, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
                                       text=True)
        started.append(Started(process, log))
        return started[-1]

    yield start
    for item in reversed(started):
        stop_process(item.process)


def test_promtool_accepts_the_config_and_its_rule_files() -> None:
    result = subprocess.run([require_tool("promtool"), "check", "config", str(CONFIG)], capture_output=True,
                            text=True, timeout=PROMTOOL_TIMEOUT_SECONDS, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    rule_files = [p for pattern in ("*.yml", "*.yaml") for p in (CONFIG.parent / "rules").glob(pattern)]
    assert rule_files
    assert f"{len(rule_files)} rule files found" in result.stdout


def test_promtool_would_catch_a_broken_config(tmp_path) -> None:
    broken = load_yaml(CONFIG)
    broken["scrape_configs"].append(dict(broken["scrape_configs"][0]))  # duplicate job name
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(broken))
    result = subprocess.run([require_tool("promtool"), "check", "config", str(path)], capture_output=True,
                            text=True, timeout=PROMTOOL_TIMEOUT_SECONDS, check=False)
    assert result.returncode != 0


def test_jobs_scrape_the_compose_services(rendered_compose: RenderedCompose) -> None:
    config = load_yaml(CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {name: [t for sc in job["static_configs"] for t in sc["targets"]] for name, job in jobs.items()}
    assert targets["shipper"] == [f"shipper:{DEFAULT_METRICS_PORT}"]
    assert targets["gateway"] == [f"gateway:{GATEWAY_PORT}"]
    assert jobs["gateway"].get("metrics_path", "/metrics") == "/metrics"
    services = rendered_compose.config["services"]
    for name, hosts in targets.items():
        for target in hosts:
            host = target.split(":")[0]
            assert host == "localhost" or host in services, f"job {name} scrapes unknown host {host}"
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]


def test_rule_files_are_the_rules_folder(rendered_compose: RenderedCompose) -> None:
    config = load_yaml(CONFIG)
    assert set(config["rule_files"]) == {"rules/*.yml", "rules/*.yaml"}
    assert rendered_compose.mounts("prometheus")["/etc/prometheus"] == str(CONFIG.parent)


def _scrape_config(ports: dict[str, int]) -> dict[str, Any]:
    """The repository's shipper and gateway jobs, pointed at local processes, scraped every second."""
    jobs = []
    for job in load_yaml(CONFIG)["scrape_configs"]:
        if job["job_name"] in ports:
            job = dict(job, scrape_interval="1s", scrape_timeout="1s")
            job["static_configs"] = [dict(sc, targets=[f"127.0.0.1:{ports[job['job_name']]}"])
                                     for sc in job["static_configs"]]
            jobs.append(job)
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs}


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_real_prometheus_scrapes_shipper_and_gateway(tmp_path, start_process) -> None:
    binary = require_tool("prometheus")
    ports = {"shipper": free_port(), "gateway": free_port()}
    shipper = start_process([sys.executable, "-c", SHIPPER_EXPORTER, str(ports["shipper"])])
    gateway_env = dict(os.environ, AI_MONITORING_API_KEY=secrets.token_urlsafe(32),
                       GATEWAY_METRICS_REQUIRE_KEY="false", LOKI_URL=f"http://127.0.0.1:{free_port()}",
                       SUMMARY_DIGEST_INTERVAL_MINUTES="0")
    gateway = start_process([sys.executable, "-c", GATEWAY_APP, str(ports["gateway"])], env=gateway_env)
    for name, started in (("shipper", shipper), ("gateway", gateway)):
        wait_until(http_ok(f"http://127.0.0.1:{ports[name]}/metrics"), START_TIMEOUT_SECONDS, name, started)
    assert httpx.get(f"http://127.0.0.1:{ports['gateway']}/health", timeout=5).status_code == 200

    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(_scrape_config(ports)))
    web_port = free_port()
    prometheus_url = f"http://127.0.0.1:{web_port}"
    prometheus = start_process([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                                f"--web.listen-address=127.0.0.1:{web_port}"])
    wait_until(http_ok(f"{prometheus_url}/-/ready"), START_TIMEOUT_SECONDS, "prometheus", prometheus)

    def shipper_series_seen() -> bool:
        found = query(prometheus_url, 'shipper_lines_shipped_total{job="shipper", source="gcs"}')
        return bool(found) and float(found[0]["value"][1]) == SHIPPED_LINES

    def gateway_series_seen() -> bool:
        return bool(query(prometheus_url, 'gateway_requests_total{job="gateway"}'))

    wait_until(shipper_series_seen, SCRAPE_TIMEOUT_SECONDS, "shipper series in Prometheus", prometheus)
    wait_until(gateway_series_seen, SCRAPE_TIMEOUT_SECONDS, "gateway series in Prometheus", prometheus)
    up = {r["metric"]["job"]: r["value"][1] for r in query(prometheus_url, "up")}
    assert up == {"shipper": "1", "gateway": "1"}
    lag = query(prometheus_url, 'shipper_checkpoint_lag_seconds{source="gcs"}')
    assert float(lag[0]["value"][1]) == 12.5
    assert query(prometheus_url, "shipper_push_duration_seconds_count")[0]["value"][1] == "1"
