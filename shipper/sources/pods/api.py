"""The Kubernetes API as the pod source uses it: the client, the pod listing, one container's log
as a raw stream."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from shipper.sources.pods.limits import PodLimits

LOG_PATH = "/api/v1/namespaces/{namespace}/pods/{name}/log"


def build_api_client() -> k8s.ApiClient:
    """In-cluster configuration when running in a pod, else the kubeconfig."""
    configuration = k8s.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=configuration)
    else:
        k8s_config.load_kube_config(client_configuration=configuration)
    return k8s.ApiClient(configuration)


def since_time(ts_ns: int) -> str:
    """sinceTime for the API: RFC 3339 truncated to the second (its only precision)."""
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LogReadError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class InstanceChanged(Exception):
    """The container (or pod) is no longer the instance the listing showed: drop this read."""


@dataclass(frozen=True)
class Instance:
    """One container instance as the listing showed it; a log read is kept only if it still holds."""

    uid: str
    restart_count: int
    container_id: str


@dataclass(frozen=True, slots=True)
class ListedPod:
    """The parts of a pod this source uses (the client types every field of a V1Pod as optional,
    though the API always sets these on a pod it lists or reads)."""

    name: str
    uid: str
    labels: dict[str, str]
    node: str
    phase: str | None
    containers: list[k8s.V1ContainerStatus]

    @classmethod
    def of(cls, pod: k8s.V1Pod) -> ListedPod:
        metadata = pod.metadata or k8s.V1ObjectMeta()
        status = pod.status or k8s.V1PodStatus()
        return cls(
            name=metadata.name or "",
            uid=metadata.uid or "",
            labels=dict(metadata.labels or {}),
            node=(pod.spec.node_name if pod.spec else None) or "",
            phase=status.phase,
            containers=list(status.container_statuses or []),
        )

    def instance(self, status: k8s.V1ContainerStatus) -> Instance:
        return Instance(self.uid, status.restart_count, status.container_id or "")



def list_pods(
    core: k8s.CoreV1Api, namespace: str, label_selector: str, limits: PodLimits
) -> Iterator[ListedPod]:
    """The pods of `namespace` (matching `label_selector`, empty: all), page by page."""
    token: str | None = None
    while True:
        page = core.list_namespaced_pod(
            namespace,
            label_selector=label_selector or None,
            limit=limits.list_page_size,
            _continue=token,
            _request_timeout=limits.request_timeout_seconds,
        )
        yield from map(ListedPod.of, page.items or [])
        token = page.metadata.var_continue if page.metadata else None
        if not token:
            return


def open_log(
    api_client: k8s.ApiClient, namespace: str, pod: str, container: str, *, after_ns: int, previous: bool,
    limits: PodLimits,
) -> Any:
    """The log of `container` (its previous instance's with `previous`) from the reorder slack
    before `after_ns` on, as an unread urllib3 response; LogReadError for an answer other than 2xx."""
    query: list[tuple[str, str]] = [("container", container), ("timestamps", "true"), ("follow", "false")]
    if previous:
        query.append(("previous", "true"))
    if after_ns:
        slack_ns = limits.reorder_slack_seconds * 1_000_000_000
        query.append(("sinceTime", since_time(max(0, after_ns - slack_ns))))
    method, url, headers, _, _ = api_client.param_serialize(
        method="GET",
        resource_path=LOG_PATH,
        path_params={"namespace": namespace, "name": pod},
        query_params=query,
        header_params={"Accept": "text/plain"},
        auth_settings=["BearerToken"],
    )
    answer = api_client.call_api(method, url, header_params=headers,
                                 _request_timeout=limits.request_timeout_seconds)
    response = answer.response  # urllib3 response, body not read yet
    if not 200 <= answer.status < 300:
        detail = status_message(response.data)
        response.release_conn()
        raise LogReadError(answer.status, detail)
    return response


def status_message(body: bytes | None) -> str:
    try:
        document = json.loads(body or b"")
    except ValueError:
        return (body or b"").decode("utf-8", errors="replace")[:200]
    return str(document.get("message", "")) if isinstance(document, dict) else ""

