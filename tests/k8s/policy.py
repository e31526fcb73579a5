"""Policy checks over rendered Kubernetes objects.

Every check takes one object (a dict as `kubectl kustomize` renders it) and returns a list of
human-readable violations; an empty list means the object passes. Objects a check does not
apply to pass it. tests/k8s/test_policy.py feeds each check a deliberately bad manifest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

Manifest = dict[str, Any]
Check = Callable[[Manifest], list[str]]

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# Namespaced Roles naming these grant nothing useful, and asking for them means the author
# wanted cluster-wide access.
CLUSTER_SCOPED_RESOURCES = {
    "nodes", "namespaces", "persistentvolumes", "storageclasses", "clusterroles",
    "clusterrolebindings", "customresourcedefinitions", "certificatesigningrequests",
    "mutatingwebhookconfigurations", "validatingwebhookconfigurations", "priorityclasses",
    "runtimeclasses", "apiservices", "ingressclasses", "csidrivers", "csinodes", "volumeattachments",
}
ESCALATING_VERBS = {"escalate", "bind", "impersonate"}
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
VERSION_TAG = re.compile(r"^v?\d+(\.\d+)*([-+._][0-9A-Za-z.-]+)?$")  # 0.1.0, v1.30, 3.12-slim


def _name(obj: Manifest) -> str:
    return f"{obj.get('kind')} {obj.get('metadata', {}).get('name', '?')}"


def pod_spec(obj: Manifest) -> dict[str, Any] | None:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind in WORKLOAD_KINDS:
        return (spec.get("template") or {}).get("spec") or {}
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec") or {}
    return None


def containers(obj: Manifest, *, init: bool = True) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, container, effective securityContext) for every container of a workload."""
    spec = pod_spec(obj)
    if spec is None:
        return
    pod_sc = spec.get("securityContext") or {}
    groups = ["containers", "initContainers"] if init else ["containers"]
    for group in groups:
        for container in spec.get(group) or []:
            effective = {**pod_sc, **(container.get("securityContext") or {})}
            yield f"{_name(obj)}/{container.get('name', '?')}", container, effective


# -- workload checks --------------------------------------------------------------------------


def root_violations(obj: Manifest) -> list[str]:
    """No container may run as root: runAsNonRoot must be true and runAsUser, if set, non-zero."""
    problems = []
    for label, _container, sc in containers(obj):
        if sc.get("runAsNonRoot") is not True:
            problems.append(f"{label}: runAsNonRoot is not true (may run as root)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{label}: runAsUser is 0 (root)")
        if sc.get("privileged") is True:
            problems.append(f"{label}: privileged")
    return problems


def hardening_violations(obj: Manifest) -> list[str]:
    """Read-only root filesystem, no privilege escalation, all capabilities dropped, seccomp."""
    problems = []
    for label, _container, sc in containers(obj):
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{label}: root filesystem writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{label}: privilege escalation allowed")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{label}: capabilities not all dropped")
        if (sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{label}: no seccomp profile (RuntimeDefault)")
    return problems


def resource_violations(obj: Manifest) -> list[str]:
    """Every container sets cpu and memory requests and limits."""
    problems = []
    for label, container, _sc in containers(obj):
        resources = container.get("resources") or {}
        for part in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(part) or {})
            if missing:
                problems.append(f"{label}: no {part} for {', '.join(sorted(missing))}")
    return problems


def probe_violations(obj: Manifest) -> list[str]:
    """Every (non-init) container has a liveness and a readiness probe."""
    problems = []
    for label, container, _sc in containers(obj, init=False):
        for probe in ("livenessProbe", "readinessProbe"):
            if not container.get(probe):
                problems.append(f"{label}: missing {probe}")
    return problems


def image_violations(obj: Manifest) -> list[str]:
    """Every image is pinned: a digest, or a version-like tag (never latest, never untagged)."""
    problems = []
    for label, container, _sc in containers(obj):
        image = container.get("image") or ""
        if DIGEST.search(image):
            continue
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if not VERSION_TAG.match(tag):
            problems.append(f"{label}: image {image!r} is not pinned to a version")
    return problems


# -- RBAC and secrets -------------------------------------------------------------------------


def rbac_violations(obj: Manifest) -> list[str]:
    """Namespaced, explicit RBAC only: no ClusterRole(Binding), no binding to a ClusterRole,
    no `*`, no cluster-scoped resources or non-resource URLs, no escalating verbs."""
    kind = obj.get("kind")
    if kind in ("ClusterRole", "ClusterRoleBinding"):
        return [f"{_name(obj)}: cluster-wide RBAC object"]
    if kind == "RoleBinding":
        ref = obj.get("roleRef") or {}
        if ref.get("kind") != "Role":
            return [f"{_name(obj)}: binds {ref.get('kind')} {ref.get('name')} (cluster-defined role)"]
        return []
    if kind != "Role":
        return []
    problems = []
    for index, rule in enumerate(obj.get("rules") or []):
        where = f"{_name(obj)} rule {index}"
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            if any("*" in item for item in rule.get(field) or []):
                problems.append(f"{where}: wildcard in {field}")
        if rule.get("nonResourceURLs"):
            problems.append(f"{where}: nonResourceURLs are cluster-scoped")
        cluster = CLUSTER_SCOPED_RESOURCES & {r.split("/")[0] for r in rule.get("resources") or []}
        if cluster:
            problems.append(f"{where}: cluster-scoped resources {sorted(cluster)}")
        escalating = ESCALATING_VERBS & set(rule.get("verbs") or [])
        if escalating:
            problems.append(f"{where}: escalating verbs {sorted(escalating)}")
    return problems


def secret_violations(obj: Manifest) -> list[str]:
    """A Secret in the repository may name its keys but never carry a value."""
    if obj.get("kind") != "Secret":
        return []
    return [
        f"{_name(obj)}: literal value for {field}.{key}"
        for field in ("data", "stringData")
        for key, value in (obj.get(field) or {}).items()
        if value not in (None, "")
    ]


WORKLOAD_CHECKS: tuple[Check, ...] = (
    root_violations, hardening_violations, resource_violations, probe_violations, image_violations,
)
ALL_CHECKS: tuple[Check, ...] = (*WORKLOAD_CHECKS, rbac_violations, secret_violations)


def all_violations(objects: list[Manifest]) -> list[str]:
    return [problem for obj in objects for check in ALL_CHECKS for problem in check(obj)]
