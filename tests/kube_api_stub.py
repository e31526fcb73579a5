"""A small local HTTP server that answers like the Kubernetes API for what the shipper uses:

- GET  /api/v1/namespaces/{ns}/pods                      (labelSelector: `k=v,k2=v2` equality only)
- GET  /api/v1/namespaces/{ns}/pods/{pod}
- GET  /api/v1/namespaces/{ns}/pods/{pod}/log            (container, timestamps, sinceTime,
                                                           previous, follow=false; text/plain)
- GET/POST/PUT /apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]
  (resourceVersion optimistic concurrency: a stale PUT or a duplicate POST answers 409)

Errors use the API's Status object. Tests seed pods and log lines, restart containers, delete pods,
make answers fail with `fail(path_regex, status)` and run an action just before a pod's next log
request is answered (`before_next_log`, e.g. a restart racing the shipper's read). No kube-apiserver
is installable here.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client as k8s

PODS_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods$")
POD_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<pod>[^/]+)$")
LOG_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<pod>[^/]+)/log$")
LEASES_PATH = re.compile(
    r"^/apis/coordination\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/leases(?:/(?P<name>[^/]+))?$"
)


def rfc3339_nano(ts_ns: int) -> str:
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def parse_since_time(text: str) -> int:
    """sinceTime is metav1.Time: RFC 3339 with second precision (a fraction is ignored)."""
    moment = datetime.fromisoformat(re.sub(r"\.\d+", "", text).replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000


@dataclass
class Container:
    name: str
    restart_count: int = 0
    current: list[tuple[int, str]] = field(default_factory=list)
    previous: list[tuple[int, str]] | None = None


@dataclass
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    node: str
    phase: str
    containers: dict[str, Container]
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_api(self) -> dict[str, Any]:
        return {
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid,
                         "labels": self.labels},
            "spec": {"nodeName": self.node,
                     "containers": [{"name": c, "image": f"example/{c}:1"} for c in self.containers]},
            "status": {
                "phase": self.phase,
                "containerStatuses": [
                    {"name": c.name, "image": f"example/{c.name}:1", "imageID": "", "ready": True,
                     "restartCount": c.restart_count,
                     "containerID": f"containerd://{self.uid[:8]}-{c.name}-{c.restart_count}"}
                    for c in self.containers.values()
                ],
            },
        }


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    status: int = 0


class KubeApiState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pods: dict[tuple[str, str], Pod] = {}
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[Request] = []
        self.failures: list[tuple[re.Pattern[str], int]] = []
        self.cut_after: dict[str, int] = {}  # pod name -> log lines sent before the connection drops
        self.log_hooks: dict[str, Callable[[], None]] = {}  # pod name -> run once, before its next log
        self._version = 100

    # -- seeding helpers used by tests ---------------------------------------------------------

    def add_pod(self, name: str, containers: list[str], *, namespace: str = "gpt",
                labels: dict[str, str] | None = None, node: str = "node-1", phase: str = "Running") -> Pod:
        pod = Pod(name, namespace, labels or {}, node, phase, {c: Container(c) for c in containers})
        with self.lock:
            self.pods[(namespace, name)] = pod
        return pod

    def write(self, pod: str, container: str, ts_ns: int, text: str, *, namespace: str = "gpt") -> None:
        with self.lock:
            self.pods[(namespace, pod)].containers[container].current.append((ts_ns, text))

    def restart(self, pod: str, container: str, *, namespace: str = "gpt") -> None:
        with self.lock:
            state = self.pods[(namespace, pod)].containers[container]
            state.previous, state.current = state.current, []
            state.restart_count += 1

    def delete_pod(self, pod: str, *, namespace: str = "gpt") -> None:
        with self.lock:
            del self.pods[(namespace, pod)]

    def truncate_after(self, pod: str, lines: int | None) -> None:
        """Send only the first `lines` lines of the pod's logs, then drop the connection (None: stop)."""
        if lines is None:
            self.cut_after.pop(pod, None)
        else:
            self.cut_after[pod] = lines

    def before_next_log(self, pod: str, action: Callable[[], None]) -> None:
        """Run `action` (once) when the next log request for `pod` arrives, before answering it."""
        self.log_hooks[pod] = action

    def fail(self, path_pattern: str, status: int) -> None:
        self.failures.append((re.compile(path_pattern), status))

    def log_requests(self) -> list[Request]:
        return [r for r in self.requests if LOG_PATH.match(r.path)]

    def next_version(self) -> str:
        self._version += 1
        return str(self._version)


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 500: "InternalError"}


class Handler(BaseHTTPRequestHandler):
    state: KubeApiState
    request_record: Request

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send_json(self, code: int, body: dict[str, Any]) -> None:
        self.request_record.status = code
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, code: int, message: str) -> None:
        self._send_json(code, status_body(code, REASONS.get(code, "Unknown"), message))

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        state = self.state
        self.request_record = Request(method, parts.path, query)
        state.requests.append(self.request_record)
        for pattern, status in state.failures:
            if pattern.search(parts.path):
                self._error(status, f"injected {status} for {parts.path}")
                return
        body = None
        if method in ("POST", "PUT"):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
        if (match := PODS_PATH.match(parts.path)) and method == "GET":
            self._list_pods(match["ns"], query)
        elif (match := POD_PATH.match(parts.path)) and method == "GET":
            self._get_pod(match["ns"], match["pod"])
        elif (match := LOG_PATH.match(parts.path)) and method == "GET":
            self._pod_log(match["ns"], match["pod"], query)
        elif match := LEASES_PATH.match(parts.path):
            self._lease(method, match["ns"], match["name"], body)
        else:
            self._error(404, f"the server could not find the requested resource ({parts.path})")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _list_pods(self, namespace: str, query: dict[str, str]) -> None:
        wanted = dict(item.split("=", 1) for item in query.get("labelSelector", "").split(",") if item)
        with self.state.lock:
            items = [
                pod.to_api() for (ns, _), pod in sorted(self.state.pods.items())
                if ns == namespace and all(pod.labels.get(k) == v for k, v in wanted.items())
            ]
        self._send_json(200, {"kind": "PodList", "apiVersion": "v1",
                              "metadata": {"resourceVersion": "1"}, "items": items})

    def _get_pod(self, namespace: str, pod_name: str) -> None:
        with self.state.lock:
            pod = self.state.pods.get((namespace, pod_name))
            body = pod.to_api() if pod is not None else None
        if body is None:
            self._error(404, f'pods "{pod_name}" not found')
        else:
            self._send_json(200, {"kind": "Pod", "apiVersion": "v1", **body})

    def _pod_log(self, namespace: str, pod_name: str, query: dict[str, str]) -> None:
        if query.get("follow", "false") != "false":
            self._error(400, "this stub serves follow=false only")
            return
        if (hook := self.state.log_hooks.pop(pod_name, None)) is not None:
            hook()
        with self.state.lock:
            pod = self.state.pods.get((namespace, pod_name))
            if pod is None:
                self._error(404, f'pods "{pod_name}" not found')
                return
            container = pod.containers.get(query.get("container", ""))
            if container is None:
                self._error(400, f"container {query.get('container')} is not valid for pod {pod_name}")
                return
            lines = container.previous if query.get("previous") == "true" else container.current
            if lines is None:
                self._error(400, f'previous terminated container "{container.name}" in pod '
                                 f'"{pod_name}" not found')
                return
            since = parse_since_time(query["sinceTime"]) if "sinceTime" in query else 0
            with_ts = query.get("timestamps") == "true"
            rendered = [(f"{rfc3339_nano(ts)} {line}\n" if with_ts else f"{line}\n")
                        for ts, line in lines if ts >= since]
            cut = self.state.cut_after.get(pod_name)
        text = "".join(rendered).encode()
        self.request_record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if cut is None:
            self.wfile.write(text)
        else:  # fewer bytes than announced, then the connection closes
            self.wfile.write("".join(rendered[:cut]).encode())
            self.close_connection = True

    def _lease(self, method: str, namespace: str, name: str | None, body: dict[str, Any] | None) -> None:
        leases = self.state.leases
        with self.state.lock:
            if method == "GET" and name:
                lease = leases.get((namespace, name))
                if lease is None:
                    self._error(404, f'leases.coordination.k8s.io "{name}" not found')
                else:
                    self._send_json(200, lease)
            elif method == "POST" and not name and body is not None:
                key = (namespace, body["metadata"]["name"])
                if key in leases:
                    self._error(409, f'leases.coordination.k8s.io "{key[1]}" already exists')
                    return
                body["metadata"].update(namespace=namespace, resourceVersion=self.state.next_version())
                body.setdefault("apiVersion", "coordination.k8s.io/v1")
                body.setdefault("kind", "Lease")
                leases[key] = body
                self._send_json(201, body)
            elif method == "PUT" and name and body is not None:
                current = leases.get((namespace, name))
                if current is None:
                    self._error(404, f'leases.coordination.k8s.io "{name}" not found')
                    return
                if body.get("metadata", {}).get("resourceVersion") != current["metadata"]["resourceVersion"]:
                    self._error(409, f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}":'
                                     " the object has been modified; please apply your changes to the latest"
                                     " version and try again")
                    return
                body["metadata"].update(namespace=namespace, resourceVersion=self.state.next_version())
                leases[(namespace, name)] = body
                self._send_json(200, body)
            else:
                self._error(405 if name else 404, "method not supported by the stub")


@dataclass
class KubeApi:
    state: KubeApiState
    host: str

    def api_client(self) -> k8s.ApiClient:
        configuration = k8s.Configuration(host=self.host)
        return k8s.ApiClient(configuration)


@pytest.fixture
def kube_api() -> Iterator[KubeApi]:
    state = KubeApiState()
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="kube-api-stub", daemon=True)
    thread.start()
    try:
        yield KubeApi(state=state, host=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
