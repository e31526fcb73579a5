"""Policy checks over rendered Kubernetes objects; each returns a list of violations."""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def _pod_spec(obj: Manifest) -> dict[str, Any] | None:
    if obj.get("kind") in WORKLOAD_KINDS:
        return obj["spec"]["template"]["spec"]
    return None


def container_violations(obj: Manifest) -> list[str]:
    spec = _pod_spec(obj)
    if spec is None:
        return []
    problems: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for container in spec.get("containers", []):
        name = f"{obj['metadata']['name']}/{container['name']}"
        sc = {**pod_sc, **(container.get("securityContext") or {})}
        if sc.get("runAsNonRoot") is not True or sc.get("runAsUser", 0) == 0:
            problems.append(f"{name}: may run as root")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: privilege escalation allowed")
        if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
            problems.append(f"{name}: capabilities not dropped")
        resources = container.get("resources") or {}
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(part) or {}):
                problems.append(f"{name}: missing {part}")
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in container:
                problems.append(f"{name}: missing {probe}")
        image = container.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if "@sha256:" not in image and tag in ("", "latest"):
            problems.append(f"{name}: image {image!r} not pinned")
    return problems


def rbac_violations(obj: Manifest) -> list[str]:
    kind = obj.get("kind")
    if kind in ("ClusterRole", "ClusterRoleBinding"):
        return [f"{kind} {obj['metadata']['name']}: cluster-wide access"]
    if kind != "Role":
        return []
    return [
        f"Role {obj['metadata']['name']}: wildcard in {field}"
        for rule in obj.get("rules", [])
        for field in ("verbs", "resources", "apiGroups")
        if "*" in rule.get(field, [])
    ]


def secret_violations(obj: Manifest) -> list[str]:
    if obj.get("kind") == "Secret" and (
        obj.get("data") or obj.get("stringData") or "data" in obj or "stringData" in obj
    ):
        return [f"Secret {obj['metadata']['name']}: carries literal data"]
    return []


def all_violations(objects: list[Manifest]) -> list[str]:
    return [
        p
        for obj in objects
        for check in (container_violations, rbac_violations, secret_violations)
        for p in check(obj)
    ]
