"""Pod-log source: the logs of every container of the running pods of one namespace.

Position, per `<pod>/<container>`: the pod uid, the restart count already handled, the kubelet
timestamp (ns) of the newest shipped line and how many lines *with exactly that timestamp* were
shipped, and a mark naming the last shipped line in stream order: its timestamp and which of the
lines with exactly that timestamp it is (`mark_ts`, `mark_n`). Logs are read with
`timestamps=true&follow=false&sinceTime=...` by a raw call (the Python client has no
`since_time`), streamed line by line.

Resuming: stdout and stderr are timestamped by separate readers, so a line can come later in the
log than another yet carry an older timestamp. The kubelet filters `sinceTime` (one-second
precision) line by line, so a read starts `REORDER_SLACK_SECONDS` before the mark's second: the
mark itself and any later line up to that much older are served. Every line with the mark's
timestamp is served, so counting them finds the mark again; everything after it is new and
shipped, whatever its timestamp. Until the mark is found (or when a read has none, or it was
rotated out of the log), a line counts as shipped when it is older than the newest shipped
timestamp or among the first lines at exactly that timestamp; the first line that is not starts
the shipping, as everything after it is new too.

Each read is checked against the instance the listing showed: before the first batch of a read is
yielded, the pod is read again (one GET, only for a read that returned lines) and if its uid, the
container's `restartCount` or its `containerID` changed since the listing, the read is discarded and
the container is left for the next pass with its position untouched. Otherwise a restart (or a pod
re-created under the same name) between the listing and the log read would ship the *new* instance's
lines as the listed one's and move the position past them, and the next pass, seeing the grown
count, would drop the previous instance's unshipped tail as already shipped. A stream opened on one
instance keeps reading that instance's file, so one check per read suffices; a change after the read
opened only costs a read again. Limit: the kubelet serves logs from its own view of the pod, which
reaches the API a moment later; a restart whose status the API has not received by the time the read
has finished its first batch is not seen (the check is made as late as possible to keep that window
small).

Restarts: when `restartCount` grew, what the previous instance wrote after the position is read
with `previous=true` before the new instance. The kubelet keeps only the last terminated
instance: if the count grew by more than one, the instances in between are lost and counted
(`restarts_missed`). A pod that is no longer listed keeps its position for
`pod_grace_seconds` (it may come back, or the listing may be partial), then the position is
dropped. A pod with the same name but a new uid starts from the beginning of its log.

Finding the mark counts only the lines with its timestamp, so it is exact. Setting it needs a count
per timestamp for the whole read; past TRACKED_TIMESTAMPS distinct timestamps, counts more than
the slack below the newest are forgotten, and a line at such a timestamp gets none: the last
shipped line that has a count is the mark then, and the lines after it are sent again next read
(Loki drops repeated entries).

Limits: a line more than `REORDER_SLACK_SECONDS` older than the mark, coming after it, is not
served and so not shipped; nor is one that comes before the first new line of a read without its
mark. A rotation that cuts through the lines sharing the mark's timestamp shifts the count.

403 and 404 answers (listing or one container's log) are counted outcomes
(`shipper_records_skipped{reason=...}` and `outcomes`), never a crash of the run; other API
failures of the listing, and a connection to the API that fails (also in the middle of a log),
raise SourceError: the batches before it are committed, the rest is read again next run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError

from shipper.config import PodsSourceConfig
from shipper.metrics import RECORDS_ADJUSTED, RECORDS_SKIPPED
from shipper.models import Batch, Cursor, LogRecord, Outcome
from shipper.records import level_of, parse_timestamp_ns
from shipper.sources.base import SourceError

log = logging.getLogger(__name__)

LOG_BATCH_LINES = 1000
REORDER_SLACK_SECONDS = 2  # how much older than the mark a later line may be and still be served
TRACKED_TIMESTAMPS = 10_000  # counts of lines per timestamp kept in one read, beyond the slack
LIST_PAGE_SIZE = 500
REQUEST_TIMEOUT_SECONDS = 60.0
LOG_PATH = "/api/v1/namespaces/{namespace}/pods/{name}/log"
SERVICE_NAME_LABELS = ("app.kubernetes.io/name", "app")
ACTIVE_PHASES = ("Running",)
# Pods that finished still have logs to read, but only once we know them.
FINISHED_PHASES = ("Succeeded", "Failed")


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


class PodSource:
    def __init__(
        self,
        config: PodsSourceConfig,
        api_client: k8s.ApiClient,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.id = config.id
        self.config = config
        self.api_client = api_client
        self.core = k8s.CoreV1Api(api_client)
        self.clock = clock
        self.outcomes: list[Outcome] = []

    @classmethod
    def from_config(cls, config: PodsSourceConfig, api_client: k8s.ApiClient | None = None) -> PodSource:
        return cls(config, api_client if api_client is not None else build_api_client())

    # -- protocol ---------------------------------------------------------------------------

    def pull(self, cursor: Cursor | None) -> Iterator[Batch]:
        self.outcomes = []
        state: dict[str, dict[str, Any]] = json.loads(json.dumps((cursor or {}).get("containers", {})))
        try:
            pods = list(self._list_pods())
        except ApiException as exc:
            if exc.status in (403, 404):
                reason = "list_forbidden" if exc.status == 403 else "namespace_not_found"
                self._count(reason, 1, f"namespace {self.config.namespace}: {exc.status} {exc.reason}")
                return
            raise SourceError(
                f"listing pods in {self.config.namespace} failed: {exc.status} {exc.reason}"
            ) from exc
        except TransportError as exc:
            raise SourceError(f"listing pods in {self.config.namespace}: API unreachable: {exc}") from exc

        listed: set[str] = set()
        for pod in pods:
            for status in pod.containers:
                key = f"{pod.name}/{status.name}"
                if pod.phase not in ACTIVE_PHASES and not (pod.phase in FINISHED_PHASES and key in state):
                    continue
                listed.add(key)
                instance = pod.instance(status)
                try:
                    batches = self._container_batches(pod, status.name, instance, state.get(key))
                    for records, position in batches:
                        state[key] = position
                        yield Batch(records=records, cursor={"containers": json.loads(json.dumps(state))})
                except InstanceChanged:  # nothing of that read was yielded; the next pass reads it again
                    log.info("pods %s: %s changed while its log was read; read again next pass", self.id, key)
                except TransportError as exc:  # connection lost or timed out mid-stream
                    raise SourceError(f"reading the log of {key}: API unreachable: {exc}") from exc

        if self._expire_unlisted(state, listed):
            yield Batch(records=[], cursor={"containers": json.loads(json.dumps(state))})

    def check(self) -> str:
        try:
            pods = list(self._list_pods())
        except ApiException as exc:
            raise SourceError(
                f"cannot list pods in namespace {self.config.namespace}: {exc.status} {exc.reason}"
            ) from exc
        running = [p for p in pods if p.phase in ACTIVE_PHASES]
        containers = sum(len(p.containers) for p in running)
        return f"namespace {self.config.namespace}: {len(running)} running pods, {containers} containers"

    # -- listing ------------------------------------------------------------------------------

    def _list_pods(self) -> Iterator[ListedPod]:
        token: str | None = None
        while True:
            page = self.core.list_namespaced_pod(
                self.config.namespace,
                label_selector=self.config.label_selector or None,
                limit=LIST_PAGE_SIZE,
                _continue=token,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
            yield from map(ListedPod.of, page.items or [])
            token = page.metadata.var_continue if page.metadata else None
            if not token:
                return

    def _expire_unlisted(self, state: dict[str, dict[str, Any]], listed: set[str]) -> bool:
        now = self.clock()
        changed = False
        for key in list(state):
            position = state[key]
            if key in listed:
                changed |= position.pop("gone_since_ns", None) is not None
            elif "gone_since_ns" not in position:
                position["gone_since_ns"] = now
                changed = True
            elif now - int(position["gone_since_ns"]) > self.config.pod_grace_seconds * 1_000_000_000:
                del state[key]
                changed = True
                log.info("pods %s: dropped the position of %s, gone for more than %ss",
                         self.id, key, self.config.pod_grace_seconds)
        return changed

    # -- one container -----------------------------------------------------------------------

    def _container_batches(
        self, pod: ListedPod, container: str, instance: Instance, saved: dict[str, Any] | None
    ) -> Iterator[tuple[list[LogRecord], dict[str, Any]]]:
        """Raises InstanceChanged (before yielding anything of that read) if a read is not of `instance`."""
        uid, restart_count = instance.uid, instance.restart_count
        known = saved is not None and saved.get("uid") == uid
        position: dict[str, Any] = (
            {k: v for k, v in saved.items() if k != "gone_since_ns"} if known and saved
            else {"uid": uid, "restart_count": 0, "ts_ns": 0, "at_ts": 0}
        )
        handled = int(position["restart_count"]) if known else 0
        if restart_count > handled:
            missed = restart_count - handled - 1
            if missed and known:
                self._count("restarts_missed", missed, f"{pod.name}/{container}")
            for records, moved in self._read_log(
                pod, container, position, instance, previous=True, restart_count=restart_count - 1
            ):
                position = moved
                yield records, position
            # the mark names a line of the previous instance's log, not of the new one's
            position = {k: v for k, v in position.items() if k not in MARK_KEYS}
            position["restart_count"] = restart_count
            yield [], position
        elif restart_count < handled:  # same uid never lowers its count; be safe anyway
            position = {**position, "restart_count": restart_count}
        yield from self._read_log(pod, container, position, instance, previous=False,
                                  restart_count=restart_count)

    def _read_log(
        self, pod: ListedPod, container: str, position: dict[str, Any], instance: Instance, *,
        previous: bool, restart_count: int,
    ) -> Iterator[tuple[list[LogRecord], dict[str, Any]]]:
        name = pod.name
        saved_mark = _mark_of(position)
        read_from = saved_mark[0] if saved_mark is not None else int(position["ts_ns"])
        try:
            response = self._open_log(name, container, read_from, previous)
        except LogReadError as exc:
            self._log_outcome(name, container, exc, previous)
            return
        labels = self._labels(pod, container)
        metadata = {"node": pod.node, "restart_count": str(restart_count)}
        saved_ts, saved_at_ts = int(position["ts_ns"]), int(position["at_ts"])
        ts_ns, at_ts = saved_ts, saved_at_ts
        dropped_at_saved_ts = 0
        counts = _TimestampCounts()
        at_mark_ts = 0  # lines with exactly the saved mark's timestamp: exact, to find the mark
        mark: tuple[int, int] | None = None  # where the next read resumes
        shipping = False  # from here on every line is new
        records: list[LogRecord] = []
        checked = finished = False
        try:
            for raw in response:
                line_ts, text = self._split(raw)
                if line_ts is None:
                    self._count("unparsable_log_line", 1, f"{name}/{container}: {text[:80]!r}")
                    continue
                nth = counts.add(line_ts)
                if not shipping:
                    if saved_mark is not None and line_ts == saved_mark[0]:
                        at_mark_ts += 1
                        if at_mark_ts == saved_mark[1]:
                            shipping = True  # the last line shipped: the ones after it are new
                            mark = saved_mark
                            continue
                    if line_ts < saved_ts:
                        continue
                    if line_ts == saved_ts and dropped_at_saved_ts < saved_at_ts:
                        dropped_at_saved_ts += 1
                        continue
                    shipping = True
                if line_ts > ts_ns:
                    ts_ns, at_ts = line_ts, 1
                elif line_ts == ts_ns:
                    at_ts += 1
                if nth is not None:  # else the last line that has a count stays the mark:
                    mark = (line_ts, nth)  # what follows it is sent again, Loki drops repeats
                records.append(LogRecord(ts_ns=line_ts, line=text, labels={**labels, "level": _level(text)},
                                         metadata=dict(metadata)))
                if len(records) >= LOG_BATCH_LINES:
                    if not checked:
                        self._check_instance(name, container, instance)
                        checked = True
                    yield records, _position(position, ts_ns, at_ts, mark)
                    records = []
            finished = True
        finally:
            if not finished:  # unread bytes left: this connection must not go back to the pool
                response.close()
            response.release_conn()
        if records:
            if not checked:
                self._check_instance(name, container, instance)
            yield records, _position(position, ts_ns, at_ts, mark)

    def _check_instance(self, name: str, container: str, instance: Instance) -> None:
        """Raise InstanceChanged unless the pod still runs `instance` of the container (one GET).

        A pod gone (404) or a forbidden GET cannot tell: the read is kept, as before this check (a
        discarded read of a deleted pod could never be read again).
        """
        try:
            pod = self.core.read_namespaced_pod(name, self.config.namespace,
                                                _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except ApiException as exc:
            if exc.status in (403, 404):
                log.warning("pods %s: cannot re-check %s/%s after reading its log: %s %s",
                            self.id, name, container, exc.status, exc.reason)
                return
            raise SourceError(f"re-reading pod {name} in {self.config.namespace} failed: "
                              f"{exc.status} {exc.reason}") from exc
        current = ListedPod.of(pod)
        now = next((current.instance(s) for s in current.containers if s.name == container), None)
        if now != instance:
            raise InstanceChanged(f"{name}/{container}: listed {instance}, now {now}")

    def _open_log(self, pod: str, container: str, after_ns: int, previous: bool) -> Any:
        query: list[tuple[str, str]] = [("container", container), ("timestamps", "true"), ("follow", "false")]
        if previous:
            query.append(("previous", "true"))
        if after_ns:
            query.append(("sinceTime", since_time(max(0, after_ns - REORDER_SLACK_SECONDS * 1_000_000_000))))
        method, url, headers, _, _ = self.api_client.param_serialize(
            method="GET",
            resource_path=LOG_PATH,
            path_params={"namespace": self.config.namespace, "name": pod},
            query_params=query,
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
        )
        answer = self.api_client.call_api(method, url, header_params=headers,
                                          _request_timeout=REQUEST_TIMEOUT_SECONDS)
        response = answer.response  # urllib3 response, body not read yet
        if not 200 <= answer.status < 300:
            detail = _status_message(response.data)
            response.release_conn()
            raise LogReadError(answer.status, detail)
        return response

    def _split(self, raw: bytes) -> tuple[int | None, str]:
        """'<RFC3339Nano> <text>' -> (ts_ns, text); (None, whole line) without a timestamp."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            RECORDS_ADJUSTED.labels(source=self.id, reason="invalid_utf8").inc()
        text = text.rstrip("\r\n")
        stamp, _, rest = text.partition(" ")
        ts_ns = parse_timestamp_ns(stamp) if "T" in stamp else None
        return (ts_ns, rest) if ts_ns is not None else (None, text)

    def _labels(self, pod: ListedPod, container: str) -> dict[str, str]:
        service = next((pod.labels[k] for k in SERVICE_NAME_LABELS if pod.labels.get(k)), container)
        return {"source": "pod", "service_name": service, "namespace": self.config.namespace,
                "pod": pod.name, "container": container}

    def _log_outcome(self, pod: str, container: str, exc: LogReadError, previous: bool) -> None:
        if exc.status == 404:
            reason = "pod_gone"
        elif exc.status == 403:
            reason = "log_forbidden"
        elif exc.status == 400 and previous:
            reason = "previous_unavailable"
        else:
            reason = f"log_error_{exc.status}"
        self._count(reason, 1, f"{pod}/{container}{' (previous)' if previous else ''}: {exc.reason}")

    def _count(self, reason: str, count: int, detail: str) -> None:
        RECORDS_SKIPPED.labels(source=self.id, reason=reason).inc(count)
        self.outcomes.append(Outcome(source=self.id, reason=reason, count=count, detail=detail))
        log.warning("pods %s: %s x%d: %s", self.id, reason, count, detail)


MARK_KEYS = ("mark_ts", "mark_n")


def _mark_of(position: dict[str, Any]) -> tuple[int, int] | None:
    if "mark_ts" not in position or "mark_n" not in position:
        return None
    return int(position["mark_ts"]), int(position["mark_n"])


def _position(
    position: dict[str, Any], ts_ns: int, at_ts: int, mark: tuple[int, int] | None
) -> dict[str, Any]:
    moved = {k: v for k, v in position.items() if k not in MARK_KEYS}
    moved.update(ts_ns=ts_ns, at_ts=at_ts)
    if mark is not None:
        moved.update(mark_ts=mark[0], mark_n=mark[1])
    return moved


class _TimestampCounts:
    """How many lines of one read had each timestamp so far. Bounded: once more than
    TRACKED_TIMESTAMPS are held, counts more than the reorder slack below the newest timestamp are
    forgotten (and the next cleanup waits until the table has doubled, so a busy second costs no
    scan per line); a line at or below a forgotten timestamp gets no count."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._newest = 0
        self._forgotten_up_to = -1
        self._cleanup_at = TRACKED_TIMESTAMPS

    def add(self, ts_ns: int) -> int | None:
        if ts_ns <= self._forgotten_up_to:
            return None
        count = self._counts[ts_ns] = self._counts.get(ts_ns, 0) + 1
        self._newest = max(self._newest, ts_ns)
        if len(self._counts) > self._cleanup_at:
            horizon = self._newest - REORDER_SLACK_SECONDS * 1_000_000_000
            old = [ts for ts in self._counts if ts < horizon]
            for ts in old:
                del self._counts[ts]
            self._forgotten_up_to = max([self._forgotten_up_to, *old])
            self._cleanup_at = max(TRACKED_TIMESTAMPS, 2 * len(self._counts))
        return count


def _level(text: str) -> str:
    record = None
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        record = parsed if isinstance(parsed, dict) else None
    return level_of(record, text)


def _status_message(body: bytes | None) -> str:
    try:
        document = json.loads(body or b"")
    except ValueError:
        return (body or b"").decode("utf-8", errors="replace")[:200]
    return str(document.get("message", "")) if isinstance(document, dict) else ""

