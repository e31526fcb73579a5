"""docker-compose-ops.yml, env.example and the Dockerfile: valid for Debian's docker-compose 1.29,
secure by default (no default secret, loopback ports), and consistent with the code's settings."""

from __future__ import annotations

import io
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main as gateway_cli
from gateway.config import DEFAULT_PORT as GATEWAY_PORT
from gateway.config import GatewaySettings
from gateway.security import KeyStore
from shipper.config import DEFAULT_METRICS_PORT, ShipperSettings
from tests.ops.conftest import (
    COMPOSE_FILE,
    REPO,
    REQUIRED_SECRETS,
    RenderedCompose,
    env_file_from_example,
    load_yaml,
    run_compose,
)
from tests.real_loki import LOKI_VERSION

pytestmark = pytest.mark.tool

EXPECTED_SERVICES = {"loki", "prometheus", "alertmanager", "grafana", "gateway", "shipper", "gcs",
                     "firestore", "demo-seed"}
STATEFUL_SERVICES = {"loki", "prometheus", "alertmanager", "grafana", "shipper", "gcs"}
PROJECT_IMAGE_SERVICES = {"gateway", "shipper", "demo-seed"}
# Variables read by libraries or by the demo job rather than by our settings classes.
FOREIGN_ENV = {"STORAGE_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"}
# read (and the keys unset) by the gateway's start script
START_SCRIPT_ENV = {"ALERTMANAGER_GATEWAY_KEY", "GRAFANA_GATEWAY_KEY", "GRAFANA_GATEWAY_LABEL_POLICY"}
SECRET_NAME = re.compile(r"KEY|PASSWORD|TOKEN|SECRET", re.IGNORECASE)
WHEEL_TIMEOUT_SECONDS = 120
REFERENCE = re.compile(r"^\$\{(?P<name>\w+)(?P<op>:?[-?])?(?P<default>[^}]*)\}$")


def services(rendered: RenderedCompose) -> dict[str, Any]:
    return rendered.config["services"]


def test_compose_config_is_valid_for_docker_compose_1_29(tmp_path) -> None:
    values = {name: secrets.token_urlsafe(24) for name in REQUIRED_SECRETS}
    result = run_compose(env_file_from_example(tmp_path / ".env", values), "config", "-q")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", REQUIRED_SECRETS)
def test_compose_refuses_to_start_without_each_secret(tmp_path, missing: str) -> None:
    values = {name: secrets.token_urlsafe(24) for name in REQUIRED_SECRETS if name != missing}
    result = run_compose(env_file_from_example(tmp_path / ".env", values), "config", "-q")
    assert result.returncode != 0
    assert missing in result.stderr


def test_env_example_has_no_secret_values() -> None:
    for line in (REPO / "env.example").read_text().splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        if SECRET_NAME.search(name):
            assert value == "", f"{name} must be empty in env.example"


def test_every_expected_service_is_there(rendered_compose: RenderedCompose) -> None:
    assert set(services(rendered_compose)) == EXPECTED_SERVICES


def test_every_service_has_a_healthcheck(rendered_compose: RenderedCompose) -> None:
    for name, service in services(rendered_compose).items():
        check = service.get("healthcheck") or {}
        assert not check.get("disable"), name
        assert check.get("test") and check["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_every_published_port_binds_loopback(rendered_compose: RenderedCompose) -> None:
    published = 0
    for name, service in services(rendered_compose).items():
        for port in service.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port['published']}"
            assert spec.startswith("127.0.0.1:"), f"{name} publishes {spec}"
            published += 1
    assert published >= len(EXPECTED_SERVICES) - 1


def test_images_are_pinned(rendered_compose: RenderedCompose) -> None:
    for name, service in services(rendered_compose).items():
        if name in PROJECT_IMAGE_SERVICES:
            assert service["build"]["dockerfile"] == "Dockerfile", name
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"


def test_loki_is_the_version_the_tests_run(rendered_compose: RenderedCompose) -> None:
    """Compose and the docs name the Loki release the real-Loki tests start (tests/real_loki.py)."""
    assert services(rendered_compose)["loki"]["image"] == f"grafana/loki:{LOKI_VERSION}"
    for doc in (REPO / "README.md", REPO / "ops-stack" / "README.md"):
        named = set(re.findall(r"grafana/loki:([\w.]+)", doc.read_text(encoding="utf-8")))
        assert named == {LOKI_VERSION}, f"{doc.name} names Loki {sorted(named)}"


def test_state_lives_in_named_volumes(rendered_compose: RenderedCompose) -> None:
    declared = set(rendered_compose.config.get("volumes", {}))
    used = set()
    for name, service in services(rendered_compose).items():
        named = [v.split(":")[0] for v in service.get("volumes", []) if not v.startswith("/")]
        used.update(named)
        if name in STATEFUL_SERVICES:
            assert named, f"{name} keeps state outside a named volume"
    assert used == declared


def test_bind_mounts_point_at_files_of_the_repository(rendered_compose: RenderedCompose) -> None:
    for name, service in services(rendered_compose).items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("/"):
                assert source.startswith(str(REPO)), f"{name} mounts {source} from outside the repo"
                assert Path(source).exists(), f"{name}: {source} missing"


def test_shared_settings_come_from_anchors() -> None:
    raw_text = COMPOSE_FILE.read_text()
    raw = load_yaml(COMPOSE_FILE)
    assert "name" not in raw, "a top-level name: is rejected by docker-compose 1.29"
    assert re.search(r"^x-common: &common$", raw_text, re.MULTILINE)
    assert raw_text.count("<<: *common") + raw_text.count("<<: *app\n") >= len(EXPECTED_SERVICES)
    for name, service in raw["services"].items():
        assert service["logging"] == raw["x-common"]["logging"], f"{name} does not use the shared settings"
        expected_restart = "on-failure" if name == "demo-seed" else raw["x-common"]["restart"]
        assert service["restart"] == expected_restart, name


def _secret_references(raw: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = []
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key) and "REQUIRE" not in key and not key.endswith("_FILE"):  # a path
                found.append((name, key, str(value)))
    return found


def test_secrets_are_references_without_defaults() -> None:
    references = _secret_references(load_yaml(COMPOSE_FILE))
    assert references
    for service, key, value in references:
        match = REFERENCE.match(value)
        assert match, f"{service}.{key} is a literal value"
        assert match["op"] in {":?", "?"} or match["default"] == "", f"{service}.{key} has a default"


def _holders(rendered: RenderedCompose, secret: str) -> set[str]:
    value = rendered.secrets[secret]
    return {name for name, svc in services(rendered).items() if value in str(svc.get("environment", {}))}


def test_the_full_access_key_reaches_only_the_gateway(rendered_compose: RenderedCompose) -> None:
    assert _holders(rendered_compose, "AI_MONITORING_API_KEY") == {"gateway"}


def test_alertmanager_holds_its_own_key_which_the_gateway_knows_with_the_alerts_scope_only(
    rendered_compose: RenderedCompose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _holders(rendered_compose, "ALERTMANAGER_GATEWAY_KEY") == {"gateway", "alertmanager"}
    gateway = services(rendered_compose)["gateway"]
    keys_file = gateway["environment"]["GATEWAY_API_KEYS_FILE"]
    script = " ".join(gateway["command"])
    assert any(keys_file.startswith(mount.rstrip("/") + "/") for mount in gateway["tmpfs"])
    assert "umask 077" in script and script.endswith("exec gateway serve --host 0.0.0.0 --port 8001")
    # the script's own `gateway keys entry` line, run here: the key works, for alerts:write only
    command = re.search(r"gateway keys entry ([^>]+)>", script)
    assert command is not None
    key = rendered_compose.secrets["ALERTMANAGER_GATEWAY_KEY"]
    monkeypatch.setattr("sys.stdin", io.StringIO(key + "\n"))
    written = tmp_path / "api-keys.yaml"
    with redirect_stdout(io.StringIO()) as output:
        assert gateway_cli(["keys", "entry", *shlex.split(command.group(1))]) == 0
    written.write_text(output.getvalue())
    entry = KeyStore(GatewaySettings(_env_file=None, gateway_api_keys_file=written)).match(key)
    assert entry is not None and entry.scopes == {"alerts:write"}


def _known_settings() -> set[str]:
    return {name.upper() for name in (*GatewaySettings.model_fields, *ShipperSettings.model_fields)}


def test_app_environment_names_are_real_settings(rendered_compose: RenderedCompose) -> None:
    known = _known_settings() | FOREIGN_ENV | START_SCRIPT_ENV
    for name in ("gateway", "shipper"):
        unknown = set(services(rendered_compose)[name]["environment"]) - known
        assert not unknown, f"{name} sets variables no settings class reads: {sorted(unknown)}"
    demo_env = set(services(rendered_compose)["demo-seed"]["environment"])
    assert not demo_env - known - {n for n in demo_env if n.startswith("DEMO_")}


def test_ports_and_commands_match_the_code(rendered_compose: RenderedCompose) -> None:
    svc = services(rendered_compose)
    assert " ".join(svc["gateway"]["command"]).endswith(f"gateway serve --host 0.0.0.0 --port {GATEWAY_PORT}")
    assert svc["shipper"]["command"] == ["shipper", "run"]
    assert svc["shipper"]["environment"]["SHIPPER_METRICS_PORT"] == str(DEFAULT_METRICS_PORT)
    assert str(DEFAULT_METRICS_PORT) in " ".join(svc["shipper"]["healthcheck"]["test"])
    assert f"127.0.0.1:{GATEWAY_PORT}:{GATEWAY_PORT}" in svc["gateway"]["ports"][0]
    assert svc["gateway"]["environment"]["GATEWAY_METRICS_REQUIRE_KEY"] == "false"


def test_pod_logs_are_off_by_default(rendered_compose: RenderedCompose) -> None:
    shipper = services(rendered_compose)["shipper"]
    assert shipper["environment"]["KUBERNETES_ENABLED"] == "false"
    assert not any("kube" in volume for volume in shipper.get("volumes", []))


def test_alertmanager_key_file_is_written_to_tmpfs(rendered_compose: RenderedCompose) -> None:
    alertmanager = services(rendered_compose)["alertmanager"]
    config = load_yaml(REPO / "ops-stack/alertmanager/alertmanager.yml")
    webhook = config["receivers"][0]["webhook_configs"][0]
    key_file = webhook["http_config"]["authorization"]["credentials_file"]
    script = " ".join(alertmanager["command"])
    assert f"> {key_file}" in script
    assert any(key_file.startswith(mount.split(":")[0].rstrip("/") + "/") for mount in alertmanager["tmpfs"])
    assert "umask 077" in script


# --- Dockerfile --------------------------------------------------------------------------------

def _final_stage(dockerfile: str) -> str:
    return re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[-1]


def test_dockerfile_runs_as_non_root_with_both_entry_points() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    final = _final_stage(dockerfile)
    users = re.findall(r"^USER\s+(\S+)", final, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"shipper", "gateway"} <= set(scripts)
    assert re.search(r'^CMD \["gateway", "serve"', final, re.MULTILINE)
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile, re.MULTILINE)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base[1])


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "the build context is an allow-list"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "shipper", "gateway"}


def _docker_context(target: Path) -> Path:
    """The files `docker build` sees: the allow-list of .dockerignore, minus caches."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)
    for package in ("shipper", "gateway"):
        shutil.copytree(REPO / package, target / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    return target


def test_the_docker_build_context_builds_a_wheel_with_both_entry_points(tmp_path) -> None:
    context = _docker_context(tmp_path / "context")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
         "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=WHEEL_TIMEOUT_SECONDS, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"shipper", "gateway"} <= set(declared)
    for name, target in declared.items():
        assert f"{name} = {target}" in scripts
    assert any(n.startswith("shipper/") for n in names) and any(n.startswith("gateway/") for n in names)
    assert not any(n.startswith("tests/") for n in names)
