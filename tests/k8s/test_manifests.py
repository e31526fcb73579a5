"""The kustomize overlays: they build, validate strictly against a Kubernetes 1.30+ schema, pass
the policy checks (tests/k8s/policy.py), and agree with the code and the Dockerfile they deploy."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tomllib
import typing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from gateway.config import DEFAULT_PORT as GATEWAY_PORT
from gateway.config import GatewaySettings
from shipper.config import ShipperSettings
from tests.k8s.policy import Manifest, all_violations

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ["dev", "staging", "prod"]
NAMESPACE = "gpt"
KUBECTL = shutil.which("kubectl")
SECRET_TEMPLATE = K8S / "base" / "secret.template.yaml"
# Read with os.environ by shipper/leader.py, set through the downward API.
DOWNWARD_ENV = {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
SETTINGS = (GatewaySettings, ShipperSettings)
REDIS = "loki-gateway-redis"
REDIS_PORT = 6379
NO_KUBECTL = "kubectl not on PATH: cannot build kustomize overlays"
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason=NO_KUBECTL)

pytestmark = pytest.mark.tool


@functools.cache
def build(target: str) -> tuple[Manifest, ...]:
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, "kustomize", str(K8S / target)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"kubectl kustomize {target} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def one(objects: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def container(objects: tuple[Manifest, ...], deployment: str) -> dict[str, Any]:
    (first,) = one(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return first


def config(objects: tuple[Manifest, ...]) -> dict[str, str]:
    return one(objects, "ConfigMap", "loki-gateway-config")["data"]


def setting_fields() -> dict[str, Any]:
    """Env var name -> annotation, for every setting either app reads."""
    return {name.upper(): field.annotation for cls in SETTINGS for name, field in cls.model_fields.items()}


def is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def schema_versions() -> tuple[str, str]:
    """The oldest and the newest strict schema from 1.30 on that kubernetes-validate ships."""
    import kubernetes_validate

    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    versions = sorted(
        tuple(int(x) for x in p.name[1:].split("-")[0].split("."))
        for p in schemas.iterdir()
        if p.name.startswith("v1.") and p.name.endswith("-local-strict")
    )
    usable = [v for v in versions if v >= (1, 30, 0)]
    assert usable, f"kubernetes-validate has no 1.30+ schema (has {versions[-3:]})"
    return ".".join(map(str, usable[0])), ".".join(map(str, usable[-1]))


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, tuple[Manifest, ...]]:
    if KUBECTL is None:
        pytest.skip(NO_KUBECTL)
    return request.param, build(f"overlays/{request.param}")


Overlay = tuple[str, tuple[Manifest, ...]]


# -- build, schema, policy --------------------------------------------------------------------


@pytest.mark.parametrize("which", [0, -1], ids=["oldest-1.30+", "newest"])
def test_overlay_objects_validate_strictly(overlay: Overlay, which: int) -> None:
    import kubernetes_validate

    version = schema_versions()[which]
    for obj in overlay[1]:
        kubernetes_validate.validate(obj, version, strict=True)


@needs_kubectl
@pytest.mark.parametrize("env", OVERLAYS)
def test_overlay_passes_kubernetes_validate_cli_strict(env: str, tmp_path: Path) -> None:
    cli = ROOT / ".venv" / "bin" / "kubernetes-validate"
    cli_path = str(cli) if cli.exists() else shutil.which("kubernetes-validate")
    if cli_path is None:
        pytest.skip("kubernetes-validate CLI not installed")
    rendered = tmp_path / f"{env}.yaml"
    rendered.write_text(yaml.safe_dump_all(build(f"overlays/{env}")))
    for version in schema_versions():
        result = subprocess.run([cli_path, "--strict", "-k", version, str(rendered)],
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "INFO" in result.stdout and "ERROR" not in result.stdout


def test_overlay_passes_policy(overlay: Overlay) -> None:
    assert all_violations(list(overlay[1])) == []


def test_overlay_has_every_expected_object_in_gpt(overlay: Overlay) -> None:
    env, objects = overlay
    kinds = sorted((o["kind"], o["metadata"]["name"].rsplit("-", 1)[0] if o["kind"] == "ConfigMap"
                    else o["metadata"]["name"]) for o in objects)
    expected = [
        ("ConfigMap", "loki-gateway-config"), ("Deployment", "gateway"), ("Deployment", "shipper"),
        ("Ingress", "gateway"), ("NetworkPolicy", "gateway"), ("NetworkPolicy", "shipper"),
        ("PersistentVolumeClaim", "shipper-state"), ("PodDisruptionBudget", "gateway"),
        ("Role", "shipper"), ("RoleBinding", "shipper"), ("Service", "gateway"),
        ("ServiceAccount", "gateway"), ("ServiceAccount", "shipper"),
        ("Deployment", REDIS), ("Service", REDIS), ("NetworkPolicy", REDIS),
    ]
    if env == "prod":
        expected.append(("HorizontalPodAutoscaler", "gateway"))
    assert kinds == sorted(expected)
    assert all(o["metadata"].get("namespace") == NAMESPACE for o in objects)
    assert all(o["metadata"]["labels"]["environment"] == env for o in objects)


def test_secret_template_has_keys_only_and_validates() -> None:
    import kubernetes_validate

    (template,) = [d for d in yaml.safe_load_all(SECRET_TEMPLATE.read_text()) if d]
    assert all_violations([template]) == []
    assert template["stringData"] and set(template["stringData"].values()) == {""}
    for version in schema_versions():
        kubernetes_validate.validate(template, version, strict=True)
    kustomization = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())
    assert SECRET_TEMPLATE.name not in kustomization["resources"], "applying it would blank the Secret"


def test_no_literal_secret_anywhere_under_k8s() -> None:
    for path in sorted(K8S.rglob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        assert all_violations([d for d in docs if d.get("kind") == "Secret"]) == [], path
        for doc in docs:  # no secretGenerator with literals or files in a kustomization
            assert not doc.get("secretGenerator"), f"{path}: secretGenerator would commit secrets"


# -- agreement with the code, the Dockerfile and each other ----------------------------------


def test_secret_references_match_the_template(overlay: Overlay) -> None:
    (template,) = [d for d in yaml.safe_load_all(SECRET_TEMPLATE.read_text()) if d]
    name, keys = template["metadata"]["name"], set(template["stringData"])
    referenced = set()
    for deployment in ("gateway", "shipper", REDIS):
        pod = one(overlay[1], "Deployment", deployment)["spec"]["template"]["spec"]
        for env in container(overlay[1], deployment).get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == name
                referenced.add(ref["key"])
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] == name
                referenced |= {item["key"] for item in volume["secret"]["items"]}
    assert referenced == keys


def test_config_and_env_names_are_settings_the_apps_read(overlay: Overlay) -> None:
    fields = setting_fields()
    data = config(overlay[1])
    unknown = set(data) - set(fields)
    assert not unknown, f"ConfigMap keys no settings class reads: {sorted(unknown)}"
    secret_in_config = {k for k in data if is_secret(fields[k])}
    assert not secret_in_config, f"secrets belong in the Secret, not the ConfigMap: {secret_in_config}"
    assert all(value != "" for value in data.values()), "an empty value is not 'unset'; leave the key out"
    for deployment in ("gateway", "shipper"):
        for env in container(overlay[1], deployment).get("env", []):
            name = env["name"]
            if name in DOWNWARD_ENV:
                assert env["valueFrom"]["fieldRef"]["fieldPath"] == DOWNWARD_ENV[name]
            else:
                assert name in fields, f"{deployment}: env {name} is read by neither app"
                if is_secret(fields[name]):
                    assert "secretKeyRef" in env.get("valueFrom", {}), f"{name} must come from the Secret"


def test_config_values_parse_as_settings(overlay: Overlay) -> None:
    data = config(overlay[1])
    for cls in SETTINGS:
        names = {n.upper() for n in cls.model_fields}
        cls.model_validate({k.lower(): v for k, v in data.items() if k in names})


def test_log_level_is_valid_for_uvicorn_and_logging(overlay: Overlay) -> None:
    import logging

    import uvicorn.config

    level = config(overlay[1])["LOG_LEVEL"]
    assert level.lower() in uvicorn.config.LOG_LEVELS, f"uvicorn rejects log level {level!r}"
    assert isinstance(logging.getLevelName(level.upper()), int)


def test_commands_match_console_scripts_and_dockerfile(overlay: Overlay) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"^ENTRYPOINT", dockerfile, re.M), "manifests replace CMD via `command`"
    user = re.search(r"^USER (\d+):(\d+)", dockerfile, re.M)
    assert user is not None
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", dockerfile, re.M) for p in line.split()}
    for deployment in ("gateway", "shipper"):
        spec = one(overlay[1], "Deployment", deployment)["spec"]["template"]["spec"]
        c = container(overlay[1], deployment)
        assert c["command"][0] in scripts
        assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]) == (
            int(user[1]), int(user[2]))
        assert {p["containerPort"] for p in c["ports"]} <= exposed
    images = {c["image"] for d in ("gateway", "shipper") for c in [container(overlay[1], d)]}
    assert len(images) == 1, "both run the one project image"


def test_gateway_port_probes_and_service(overlay: Overlay) -> None:
    objects = overlay[1]
    c = container(objects, "gateway")
    args = c["command"]
    assert args[:2] == ["gateway", "serve"]
    port = int(args[args.index("--port") + 1])
    assert port == GATEWAY_PORT == 8001
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert c["ports"] == [{"name": "http", "containerPort": port}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    service = one(objects, "Service", "gateway")["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/tmp" in mounts  # read-only root filesystem
    keys_file = Path(config(objects)["GATEWAY_API_KEYS_FILE"])
    keys_mount = next(m for m in c["volumeMounts"] if m["mountPath"] == str(keys_file.parent))
    assert keys_mount["readOnly"] is True
    volume = next(v for v in one(objects, "Deployment", "gateway")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == keys_mount["name"])
    assert [i["path"] for i in volume["secret"]["items"]] == [keys_file.name]


def test_base_gateway_resources_and_hardening() -> None:
    if KUBECTL is None:
        pytest.skip(NO_KUBECTL)
    objects = build("base")
    c = container(objects, "gateway")
    assert c["resources"]["requests"] == {"cpu": "200m", "memory": "512Mi"}
    spec = one(objects, "Deployment", "gateway")["spec"]["template"]["spec"]
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False


def test_shipper_state_metrics_and_leader_election(overlay: Overlay) -> None:
    objects = overlay[1]
    data = config(objects)
    deployment = one(objects, "Deployment", "shipper")
    c = container(objects, "shipper")
    assert c["command"] == ["shipper", "run"]
    assert [p["containerPort"] for p in c["ports"]] == [int(data["SHIPPER_METRICS_PORT"])]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    # SHIPPER_STATE_DIR is the PVC's mount
    spec = deployment["spec"]["template"]["spec"]
    state = next(m for m in c["volumeMounts"] if m["mountPath"] == data["SHIPPER_STATE_DIR"])
    claim = next(v for v in spec["volumes"] if v["name"] == state["name"])["persistentVolumeClaim"]
    pvc = one(objects, "PersistentVolumeClaim", claim["claimName"])
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    # leader election: identity and namespace from the downward API; on once scaled
    env = {e["name"]: e for e in c["env"]}
    assert {n: env[n]["valueFrom"]["fieldRef"]["fieldPath"] for n in DOWNWARD_ENV} == DOWNWARD_ENV
    replicas = deployment["spec"]["replicas"]
    assert replicas == 1 or data["SHIPPER_LEADER_ELECTION"] == "true"


def test_shipper_role_grants_exactly_what_the_code_calls(overlay: Overlay) -> None:
    """Scan shipper/ for Kubernetes client calls (and raw API paths) and compare with the Role."""
    verbs = {"read": "get", "list": "list", "create": "create", "replace": "update",
             "patch": "patch", "delete": "delete"}
    resources = {"pod": "pods", "pod_log": "pods/log", "lease": "leases"}
    needed = set()
    for source in (ROOT / "shipper").rglob("*.py"):
        for verb, resource in re.findall(r"\.(read|list|create|replace|patch|delete)_namespaced_(\w+?)\(",
                                         source.read_text()):
            needed.add((verbs[verb], resources[resource]))
        # shipper/sources/pods/api.py streams logs with a raw GET on the log subresource
        if re.search(r"/namespaces/\{namespace\}/pods/\{name\}/log", source.read_text()):
            needed.add(("get", "pods/log"))
    assert needed >= {("get", "leases"), ("create", "leases"), ("update", "leases"),
                      ("list", "pods"), ("get", "pods/log")}

    objects = overlay[1]
    role = one(objects, "Role", "shipper")
    granted = {(verb, resource) for rule in role["rules"]
               for verb in rule["verbs"] for resource in rule["resources"]}
    assert needed <= granted
    assert {r for _, r in granted} == {"pods", "pods/log", "leases"}
    assert {v for v, r in granted if r in ("pods", "pods/log")} == {"get", "list", "watch"}
    assert {v for v, r in granted if r == "leases"} == {"get", "create", "update"}
    lease_name = config(objects)["SHIPPER_LEASE_NAME"]
    for rule in role["rules"]:
        if rule["resources"] == ["leases"] and "resourceNames" in rule:
            assert rule["resourceNames"] == [lease_name]

    binding = one(objects, "RoleBinding", "shipper")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "shipper"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "shipper", "namespace": NAMESPACE}]
    pod = one(objects, "Deployment", "shipper")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "shipper"


def test_service_accounts_use_workload_identity(overlay: Overlay) -> None:
    env, objects = overlay
    for name in ("gateway", "shipper"):
        account = one(objects, "ServiceAccount", name)
        gsa = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert re.fullmatch(rf"loki-{name}-{env}@[A-Za-z0-9_-]+\.iam\.gserviceaccount\.com", gsa)
        assert one(objects, "Deployment", name)["spec"]["template"]["spec"]["serviceAccountName"] == name


def _egress_ports_to_namespace(policy: Manifest, namespace: str) -> set[int]:
    ports = set()
    for rule in policy["spec"].get("egress", []):
        for peer in rule.get("to", []):
            selector = peer.get("namespaceSelector", {}).get("matchLabels")
            if selector == {"kubernetes.io/metadata.name": namespace}:
                ports |= {p["port"] for p in rule["ports"]}
    return ports


def _egress_cidr_ports(policy: Manifest) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for rule in policy["spec"].get("egress", []):
        for peer in rule.get("to", []):
            if "ipBlock" in peer:
                found.setdefault(peer["ipBlock"]["cidr"], set()).update(p["port"] for p in rule["ports"])
    return found


def test_network_policies_match_ports_and_urls(overlay: Overlay) -> None:
    objects = overlay[1]
    data = config(objects)
    wanted = {"gateway": ["LOKI_URL", "PROMETHEUS_URL", "ALERTMANAGER_URL"], "shipper": ["LOKI_URL"]}
    own_port = {"gateway": GATEWAY_PORT, "shipper": int(data["SHIPPER_METRICS_PORT"])}
    for name, urls in wanted.items():
        policy = one(objects, "NetworkPolicy", name)
        assert policy["spec"]["podSelector"] == {"matchLabels": {"app": name}}
        assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
        ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert ingress_ports == {own_port[name]}
        for key in urls:
            url = urlsplit(data[key])
            namespace = url.hostname.split(".")[1]  # <svc>.<ns>.svc.cluster.local
            assert url.port in _egress_ports_to_namespace(policy, namespace), f"{name} cannot reach {key}"
        # DNS, the GKE metadata server (Workload Identity) and HTTPS (k8s API, Google APIs)
        dns = [r for r in policy["spec"]["egress"] if "to" not in r]
        assert {(p["port"], p["protocol"]) for r in dns for p in r["ports"]} == {(53, "UDP"), (53, "TCP")}
        assert _egress_cidr_ports(policy) == {"169.254.169.254/32": {80}, "169.254.169.252/32": {988},
                                              "0.0.0.0/0": {443}}


def test_gateway_ingress_sources(overlay: Overlay) -> None:
    (rule,) = one(overlay[1], "NetworkPolicy", "gateway")["spec"]["ingress"]
    peers = rule["from"]
    names = []
    for peer in peers:
        selector = peer.get("podSelector", {})
        names += selector.get("matchLabels", {}).values()
        for expression in selector.get("matchExpressions", []):
            names += expression["values"]
    assert set(names) == {"ingress-nginx", "grafana", "prometheus", "alertmanager", "trading-dashboard"}
    assert all(p.get("podSelector") for p in peers), "no whole-namespace peers"


def test_ingress_tls_cors_and_paths(overlay: Overlay) -> None:
    env, objects = overlay
    ingress = one(objects, "Ingress", "gateway")
    notes = ingress["metadata"]["annotations"]
    assert notes["cert-manager.io/cluster-issuer"]
    assert notes["nginx.ingress.kubernetes.io/enable-cors"] == "true"
    origins = [o.strip() for o in notes["nginx.ingress.kubernetes.io/cors-allow-origin"].split(",")]
    assert origins and all(o.startswith("https://") for o in origins)
    assert "x-api-key" in notes["nginx.ingress.kubernetes.io/cors-allow-headers"]
    (rule,) = ingress["spec"]["rules"]
    (tls,) = ingress["spec"]["tls"]
    assert tls["hosts"] == [rule["host"]] and tls["secretName"]
    assert (rule["host"].split(".")[1] == env) or (env == "prod" and rule["host"] == "gateway.example.com")
    paths = {p["path"] for p in rule["http"]["paths"]}
    assert paths == {"/api", "/logs", "/health", "/mcp"}, "/metrics and / must not be published"
    for path in rule["http"]["paths"]:
        assert path["backend"]["service"] == {"name": "gateway", "port": {"name": "http"}}


def test_hosts_differ_per_overlay() -> None:
    if KUBECTL is None:
        pytest.skip(NO_KUBECTL)
    hosts = [one(build(f"overlays/{e}"), "Ingress", "gateway")["spec"]["rules"][0]["host"] for e in OVERLAYS]
    assert len(set(hosts)) == len(OVERLAYS)


def test_replicas_hpa_and_pdb(overlay: Overlay) -> None:
    env, objects = overlay
    gateway = one(objects, "Deployment", "gateway")
    hpas = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    if env == "prod":
        (hpa,) = hpas
        spec = hpa["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
        assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 10)
        (metric,) = spec["metrics"]
        target = {"type": "Utilization", "averageUtilization": 80}
        assert metric["resource"] == {"name": "cpu", "target": target}
        assert "replicas" not in gateway["spec"], "the HPA owns the replica count"
    else:
        assert hpas == []
        assert gateway["spec"]["replicas"] == {"dev": 1, "staging": 2}[env]
    assert one(objects, "Deployment", "shipper")["spec"]["replicas"] == 1
    pdb = one(objects, "PodDisruptionBudget", "gateway")
    assert pdb["spec"]["selector"] == {"matchLabels": {"app": "gateway"}}


def test_gateway_replicas_share_one_password_protected_redis_only_they_reach(overlay: Overlay) -> None:
    objects = overlay[1]
    url = urlsplit(config(objects)["REDIS_URL"])
    assert (url.scheme, url.hostname, url.port, url.password) == ("redis", REDIS, REDIS_PORT, None)
    service = one(objects, "Service", REDIS)["spec"]
    assert service["selector"] == {"app": REDIS}
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(REDIS_PORT, "redis")]

    # the server requires the password the gateway sends: the same key of the same Secret
    redis = container(objects, REDIS)
    secret_key = {"name": "loki-gateway-secrets", "key": "redis-password"}
    for env in (redis["env"], container(objects, "gateway")["env"]):
        (password,) = [e for e in env if e["name"] == "REDIS_PASSWORD"]
        assert password["valueFrom"]["secretKeyRef"] == secret_key
    args = redis["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert {"name": "redis", "containerPort": REDIS_PORT} in redis["ports"]
    # only keys with a TTL (cache, counters) are evicted, never the alert store's
    assert args[args.index("--maxmemory-policy") + 1] == "volatile-lru"

    # ingress from the gateway pods only, no egress at all; the gateway may reach it
    policy = one(objects, "NetworkPolicy", REDIS)["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app": REDIS}}
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"] and policy["egress"] == []
    assert policy["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"app": "gateway"}}}],
                                  "ports": [{"port": REDIS_PORT, "protocol": "TCP"}]}]
    gateway_egress = one(objects, "NetworkPolicy", "gateway")["spec"]["egress"]
    assert {"to": [{"podSelector": {"matchLabels": {"app": REDIS}}}],
            "ports": [{"port": REDIS_PORT, "protocol": "TCP"}]} in gateway_egress
