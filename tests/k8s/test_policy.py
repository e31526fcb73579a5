"""Each policy check can fail: a good manifest passes it, a deliberately bad one is caught."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.k8s import policy
from tests.k8s.policy import Manifest


def good_deployment() -> Manifest:
    container = {
        "name": "app",
        "image": "europe-docker.pkg.dev/p/r/app:0.1.0",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"cpu": "1", "memory": "256Mi"}},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8001}},
        "readinessProbe": {"httpGet": {"path": "/health/ready", "port": 8001}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "good"},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


def good_role() -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "good"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}],
    }


def _container(obj: Manifest) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]


def _sc(obj: Manifest) -> dict[str, Any]:
    return _container(obj)["securityContext"]


def _set(path: Callable[[Manifest], dict[str, Any]], key: str, value: Any) -> Callable[[Manifest], None]:
    def mutate(obj: Manifest) -> None:
        path(obj)[key] = value
    return mutate


def _drop(path: Callable[[Manifest], dict[str, Any]], key: str) -> Callable[[Manifest], None]:
    def mutate(obj: Manifest) -> None:
        del path(obj)[key]
    return mutate


def _root_init_container(obj: Manifest) -> None:
    init = copy.deepcopy(_container(obj))
    init["securityContext"]["runAsUser"] = 0
    obj["spec"]["template"]["spec"]["initContainers"] = [init]


def _pod_level_root(obj: Manifest) -> None:
    # The pod says root and the container does not override it.
    del _sc(obj)["runAsNonRoot"]
    obj["spec"]["template"]["spec"]["securityContext"] = {"runAsNonRoot": False}


WORKLOAD_CASES = [
    (policy.root_violations, _drop(_sc, "runAsNonRoot"), "runAsNonRoot"),
    (policy.root_violations, _set(_sc, "runAsUser", 0), "runAsUser is 0"),
    (policy.root_violations, _set(_sc, "privileged", True), "privileged"),
    (policy.root_violations, _root_init_container, "runAsUser is 0"),
    (policy.root_violations, _pod_level_root, "runAsNonRoot"),
    (policy.hardening_violations, _set(_sc, "readOnlyRootFilesystem", False), "root filesystem writable"),
    (policy.hardening_violations, _drop(_sc, "allowPrivilegeEscalation"), "privilege escalation"),
    (policy.hardening_violations, _set(_sc, "capabilities", {"drop": ["NET_RAW"]}), "capabilities"),
    (policy.hardening_violations, _drop(_sc, "seccompProfile"), "seccomp"),
    (policy.resource_violations, _drop(_container, "resources"), "no requests"),
    (policy.resource_violations,
     _set(_container, "resources", {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1"}}),
     "no limits for memory"),
    (policy.probe_violations, _drop(_container, "livenessProbe"), "missing livenessProbe"),
    (policy.probe_violations, _drop(_container, "readinessProbe"), "missing readinessProbe"),
    (policy.image_violations, _set(_container, "image", "nginx:latest"), "not pinned"),
    (policy.image_violations, _set(_container, "image", "nginx"), "not pinned"),
    (policy.image_violations, _set(_container, "image", "registry:5000/app"), "not pinned"),
    (policy.image_violations, _set(_container, "image", "ghcr.io/x/app:stable"), "not pinned"),
]


@pytest.mark.parametrize(("check", "mutate", "expected"), WORKLOAD_CASES,
                         ids=[f"{c.__name__}-{e}" for c, _, e in WORKLOAD_CASES])
def test_workload_check_catches_bad_manifest(
    check: policy.Check, mutate: Callable[[Manifest], None], expected: str
) -> None:
    good = good_deployment()
    assert check(good) == []
    bad = copy.deepcopy(good)
    mutate(bad)
    problems = check(bad)
    assert any(expected in p for p in problems), problems
    assert any(expected in p for p in policy.all_violations([bad]))


@pytest.mark.parametrize("image", [
    "europe-docker.pkg.dev/p/r/app:0.1.0",
    "python:3.12.12-slim-bookworm",
    "registry:5000/app:v1.30.2",
    "nginx@sha256:" + "a" * 64,
])
def test_pinned_images_pass(image: str) -> None:
    deployment = good_deployment()
    _container(deployment)["image"] = image
    assert policy.image_violations(deployment) == []


def test_cronjob_and_pod_containers_are_checked() -> None:
    container = _container(good_deployment())
    container["image"] = "busybox:latest"
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [container]}}
    cron = {"kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [container]}}}}}}
    assert policy.image_violations(pod) and policy.image_violations(cron)


def _rule(**changes: Any) -> Callable[[Manifest], None]:
    def mutate(obj: Manifest) -> None:
        obj["rules"][0].update(changes)
    return mutate


RBAC_CASES = [
    (_rule(verbs=["*"]), "wildcard in verbs"),
    (_rule(apiGroups=["*"]), "wildcard in apiGroups"),
    (_rule(resources=["*"]), "wildcard in resources"),
    (_rule(resources=["pods/*"]), "wildcard in resources"),
    (_rule(resources=["nodes"]), "cluster-scoped resources"),
    (_rule(resources=["namespaces"], verbs=["get"]), "cluster-scoped resources"),
    (_rule(nonResourceURLs=["/metrics"]), "nonResourceURLs"),
    (_rule(verbs=["get", "impersonate"]), "escalating verbs"),
]


@pytest.mark.parametrize(("mutate", "expected"), RBAC_CASES, ids=[e for _, e in RBAC_CASES])
def test_rbac_check_catches_bad_role(mutate: Callable[[Manifest], None], expected: str) -> None:
    assert policy.rbac_violations(good_role()) == []
    bad = good_role()
    mutate(bad)
    assert any(expected in p for p in policy.rbac_violations(bad))


@pytest.mark.parametrize("bad", [
    {"kind": "ClusterRole", "metadata": {"name": "admin"}, "rules": []},
    {"kind": "ClusterRoleBinding", "metadata": {"name": "x"},
     "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}},
    # the seed's mistake: reusing cluster-admin, here through a namespaced binding
    {"kind": "RoleBinding", "metadata": {"name": "x"},
     "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}},
], ids=["ClusterRole", "ClusterRoleBinding", "RoleBinding-to-ClusterRole"])
def test_rbac_check_catches_cluster_wide_access(bad: Manifest) -> None:
    assert policy.rbac_violations(bad)


def test_rbac_check_passes_namespaced_binding() -> None:
    binding = {"kind": "RoleBinding", "metadata": {"name": "x"}, "roleRef": {"kind": "Role", "name": "r"}}
    assert policy.rbac_violations(binding) == []


@pytest.mark.parametrize("bad", [
    {"stringData": {"openai-api-key": "sk-live"}},
    {"data": {"api-keys.yaml": "LSBuYW1lOiB4Cg=="}},
    {"data": {"empty": ""}, "stringData": {"token": "t"}},
], ids=["stringData", "data", "mixed"])
def test_secret_check_catches_literal_values(bad: Manifest) -> None:
    secret = {"kind": "Secret", "metadata": {"name": "s"}, **bad}
    assert policy.secret_violations(secret)
    assert policy.all_violations([secret])


def test_secret_check_passes_keys_only_template() -> None:
    template = {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "", "b": None}}
    assert policy.secret_violations(template) == []
    assert policy.secret_violations({"kind": "Secret", "metadata": {"name": "s"}}) == []


def test_checks_ignore_unrelated_kinds() -> None:
    config_map = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    assert policy.all_violations([config_map]) == []
