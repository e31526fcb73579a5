from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.policy import all_violations, container_violations, rbac_violations, secret_violations

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ["dev", "staging", "prod"]
KUBECTL = shutil.which("kubectl")


def _schema_version() -> str:
    import kubernetes_validate

    schema_dir = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    versions = [
        tuple(int(x) for x in p.name[1:].split("-")[0].split("."))
        for p in schema_dir.iterdir()
        if p.name.startswith("v1.") and p.name.endswith("-local-strict")
    ]
    newest = max(v for v in versions if v >= (1, 30, 0))
    return ".".join(map(str, newest))


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    if KUBECTL is None:
        pytest.skip("kubectl not on PATH: cannot build kustomize overlays")
    out = subprocess.run(
        [KUBECTL, "kustomize", str(ROOT / "k8s/overlays" / request.param)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return request.param, [doc for doc in yaml.safe_load_all(out) if doc]


def test_overlay_validates_against_strict_schema(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    import kubernetes_validate

    version = _schema_version()
    for obj in rendered[1]:
        kubernetes_validate.validate(obj, version, strict=True)


def test_overlay_passes_policy(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _env, objects = rendered
    assert all_violations(objects) == []
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Role", "RoleBinding", "NetworkPolicy", "Ingress", "PodDisruptionBudget"} <= kinds
    assert all(o["metadata"].get("namespace") == "gpt" for o in objects)


def test_prod_hpa(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    env, objects = rendered
    hpas = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    if env != "prod":
        assert hpas == []
        return
    (hpa,) = hpas
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80


def test_policy_catches_bad_manifest() -> None:
    bad = {
        "kind": "Deployment",
        "metadata": {"name": "bad"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:latest"}]}}},
    }
    problems = container_violations(bad)
    assert any("root" in p for p in problems) and any("not pinned" in p for p in problems)
    assert any("missing livenessProbe" in p for p in problems)
    wildcard = {
        "kind": "Role",
        "metadata": {"name": "r"},
        "rules": [{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}],
    }
    assert rbac_violations(wildcard)
    assert rbac_violations({"kind": "ClusterRole", "metadata": {"name": "admin"}})
    assert secret_violations({"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}})


def test_deploy_script_syntax_and_rejects_unknown_overlay() -> None:
    script = ROOT / "scripts/deploy.sh"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=10)
    result = subprocess.run(["bash", str(script), "qa"], capture_output=True, text=True, timeout=10)
    assert result.returncode != 0
    assert "unknown overlay" in result.stderr
