"""The example "Loki via gateway" data source: provisioned as a Loki data source on the gateway with
its key as a secure header from the environment, the key reaching only Grafana and the gateway,
whose start script (run here for real) turns it into a logs:read key within the team's label
policy, which the gateway then enforces on the header exactly as Grafana sends it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import respx
import yaml

from gateway.config import DEFAULT_PORT as GATEWAY_PORT
from gateway.main import create_app
from gateway.security import KeyStore, generate_key
from tests.gateway.conftest import LOKI_TEST_URL, make_settings, running_client
from tests.ops.conftest import (
    REPO,
    REQUIRED_SECRETS,
    env_file_from_example,
    load_yaml,
    require_tool,
    run_compose,
)

DATASOURCES = REPO / "ops-stack/grafana/provisioning/datasources/datasources.yaml"
KEYS_DIR = "/run/gateway-keys"
SERVE = f"exec gateway serve --host 0.0.0.0 --port {GATEWAY_PORT}"
SCRIPT_TIMEOUT_SECONDS = 60


def gateway_source() -> dict[str, Any]:
    sources = {s["name"]: s for s in load_yaml(DATASOURCES)["datasources"]}
    return sources["Loki via gateway"]


def rendered(tmp_path: Path, **overrides: str) -> dict[str, Any]:
    values = {name: generate_key() for name in REQUIRED_SECRETS} | overrides
    result = run_compose(env_file_from_example(tmp_path / ".env", values), "config")
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout)["services"]) | {"_values": values}


def test_the_data_source_is_loki_on_the_gateway_with_the_key_as_a_secure_header() -> None:
    source = gateway_source()
    assert source["type"] == "loki" and source["access"] == "proxy"
    assert source["url"] == f"http://gateway:{GATEWAY_PORT}"
    assert source["uid"] != "loki"  # dashboards keep using the direct data source by uid
    assert source["jsonData"]["httpHeaderName1"] == "x-api-key"
    assert source["jsonData"]["manageAlerts"] is False  # the gateway refuses Loki's ruler API
    # a reference Grafana expands from its environment, never a literal key in the repository
    assert source["secureJsonData"] == {"httpHeaderValue1": "$GRAFANA_GATEWAY_KEY"}
    assert "httpHeaderValue1" not in source["jsonData"]


def test_the_grafana_key_reaches_grafana_and_the_gateway_only(tmp_path: Path) -> None:
    key = generate_key()
    services = rendered(tmp_path, GRAFANA_GATEWAY_KEY=key)
    holders = {n for n, s in services.items() if n != "_values" and key in str(s.get("environment", {}))}
    assert holders == {"grafana", "gateway"}
    assert services["grafana"]["environment"]["GRAFANA_GATEWAY_KEY"] == key
    assert services["gateway"]["environment"]["GRAFANA_GATEWAY_LABEL_POLICY"] == '{source="gcs"}'


def run_start_script(services: dict[str, Any], keys_dir: Path) -> subprocess.CompletedProcess[str]:
    """The gateway's start script as compose renders it, with the keys file written to `keys_dir`
    and `gateway serve` replaced by printing that file."""
    gateway = services["gateway"]
    script = " ".join(gateway["command"])
    assert script.endswith(SERVE)
    script = script.replace(KEYS_DIR, str(keys_dir)).replace(SERVE, f"cat {keys_dir}/api-keys.yaml")
    script = script.replace("$$", "$")  # `config` prints compose's escape; the container gets one $
    env = {k: str(v) for k, v in gateway["environment"].items()}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS
    )


async def test_the_start_script_makes_a_scoped_key_that_the_gateway_enforces(tmp_path: Path) -> None:
    key = generate_key()
    services = rendered(tmp_path, GRAFANA_GATEWAY_KEY=key)
    started = run_start_script(services, tmp_path)
    assert started.returncode == 0, started.stderr
    keys_file = tmp_path / "api-keys.yaml"
    entry = KeyStore(make_settings(gateway_api_keys_file=keys_file)).match(key)
    assert entry is not None and entry.scopes == {"logs:read"} and entry.label_policy == '{source="gcs"}'
    alertmanager = services["_values"]["ALERTMANAGER_GATEWAY_KEY"]
    assert KeyStore(make_settings(gateway_api_keys_file=keys_file)).match(alertmanager) is not None

    # what Grafana sends with this data source: its header name, the key as the value
    header = gateway_source()["jsonData"]["httpHeaderName1"]
    app = create_app(make_settings(gateway_api_keys_file=keys_file))
    with respx.mock(base_url=LOKI_TEST_URL) as loki:
        route = loki.get("/loki/api/v1/labels").respond(json={"status": "success", "data": ["source"]})
        async with running_client(app) as client:
            answer = await client.get("/loki/api/v1/labels", headers={header: key})
            wrong = await client.get("/loki/api/v1/labels", headers={header: generate_key()})
    assert answer.status_code == 200 and wrong.status_code == 401
    assert route.calls.last.request.url.params["query"] == '{source="gcs"}'


def test_without_a_grafana_key_only_alertmanagers_key_is_written(tmp_path: Path) -> None:
    started = run_start_script(rendered(tmp_path), tmp_path)
    assert started.returncode == 0, started.stderr
    assert "grafana-team" not in started.stdout and "alertmanager" in started.stdout


def test_a_grafana_key_without_a_label_policy_stops_the_start(tmp_path: Path) -> None:
    """A team key without a policy would read every source: the gateway does not start."""
    started = run_start_script(
        rendered(tmp_path, GRAFANA_GATEWAY_KEY=generate_key(), GRAFANA_GATEWAY_LABEL_POLICY=""), tmp_path
    )
    assert started.returncode != 0 and "GRAFANA_GATEWAY_LABEL_POLICY" in started.stderr
    assert "grafana-team" not in started.stdout


@pytest.fixture(autouse=True)
def _compose_present() -> None:
    require_tool("docker-compose")
