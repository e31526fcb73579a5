"""The pod-log source: lists the pods, reads each container's log from its position (the previous
instance's rest first after a restart) and keeps the positions of containers gone for a while
(the package docstring says how a read resumes exactly)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError
from urllib3.response import HTTPResponse

from shipper.config import PodsSourceConfig
from shipper.metrics import RECORDS_ADJUSTED, RECORDS_SKIPPED
from shipper.models import Batch, Cursor, LogRecord, Outcome
from shipper.records import level_of, parse_timestamp_ns
from shipper.sources.base import SourceError
from shipper.sources.pods.api import (
    Instance,
    InstanceChanged,
    ListedPod,
    LogReadError,
    build_api_client,
    list_pods,
    open_log,
)
from shipper.sources.pods.limits import DEFAULT_LIMITS, PodLimits
from shipper.sources.pods.position import MARK_KEYS, ReadProgress

log = logging.getLogger("shipper.sources.pods")

SERVICE_NAME_LABELS = ("app.kubernetes.io/name", "app")
ACTIVE_PHASES = ("Running",)
# Pods that finished still have logs to read: the rest of one seen running, and the whole log of
# one that ran and finished between two passes (a Job's, a CronJob's)
FINISHED_PHASES = ("Succeeded", "Failed")


class PodSource:
    def __init__(
        self,
        config: PodsSourceConfig,
        api_client: k8s.ApiClient,
        clock: Callable[[], int] = time.time_ns,
        limits: PodLimits = DEFAULT_LIMITS,
    ) -> None:
        self.id = config.id
        self.limits = limits
        self.config = config
        self.api_client = api_client
        self.core = k8s.CoreV1Api(api_client)
        self.clock = clock
        self.outcomes: list[Outcome] = []

    @classmethod
    def from_config(
        cls, config: PodsSourceConfig, api_client: k8s.ApiClient | None = None, *,
        limits: PodLimits = DEFAULT_LIMITS,
    ) -> PodSource:
        return cls(config, api_client if api_client is not None else build_api_client(), limits=limits)

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
                if pod.phase not in ACTIVE_PHASES and pod.phase not in FINISHED_PHASES:
                    continue  # pending: nothing written yet
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
        return list_pods(self.core, self.config.namespace, self.config.label_selector, self.limits)

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
        progress = ReadProgress(position, self.limits)
        try:
            response = open_log(self.api_client, self.config.namespace, pod.name, container,
                                after_ns=progress.shipped.read_from, previous=previous, limits=self.limits)
        except LogReadError as exc:
            self._log_outcome(pod.name, container, exc, previous)
            return
        make_record = self._record_maker(pod, container, restart_count)
        read = self._record_batches(response, progress, make_record, f"{pod.name}/{container}")
        checked = False
        with closing(read) as batches:  # a read stopped early frees its response now, not when collected
            for records in batches:
                if not checked:
                    self._check_instance(pod.name, container, instance)
                    checked = True
                yield records, progress.position()

    def _record_batches(
        self, response: HTTPResponse, progress: ReadProgress, make_record: Callable[[int, str], LogRecord],
        where: str,
    ) -> Generator[list[LogRecord], None, None]:
        """The new lines of `response` as records, in batches of log_batch_lines (the last one smaller)."""
        records: list[LogRecord] = []
        finished = False
        try:
            for raw in response:
                line_ts, text = self._split(raw)
                if line_ts is None:
                    self._count("unparsable_log_line", 1, f"{where}: {text[:80]!r}")
                    continue
                if not progress.is_new(line_ts):
                    continue
                records.append(make_record(line_ts, text))
                if len(records) >= self.limits.log_batch_lines:
                    yield records
                    records = []
            finished = True
        finally:
            if not finished:  # unread bytes left: this connection must not go back to the pool
                response.close()
            response.release_conn()
        if records:
            yield records

    def _record_maker(
        self, pod: ListedPod, container: str, restart_count: int
    ) -> Callable[[int, str], LogRecord]:
        labels = self._labels(pod, container)
        metadata = {"node": pod.node, "restart_count": str(restart_count)}

        def make_record(ts_ns: int, text: str) -> LogRecord:
            return LogRecord(ts_ns=ts_ns, line=text, labels={**labels, "level": _level(text)},
                             metadata=dict(metadata))

        return make_record

    def _check_instance(self, name: str, container: str, instance: Instance) -> None:
        """Raise InstanceChanged unless the pod still runs `instance` of the container (one GET).

        A pod gone (404) or a forbidden GET cannot tell: the read is kept, as before this check (a
        discarded read of a deleted pod could never be read again).
        """
        try:
            pod = self.core.read_namespaced_pod(name, self.config.namespace,
                                                _request_timeout=self.limits.request_timeout_seconds)
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


def _level(text: str) -> str:
    record = None
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        record = parsed if isinstance(parsed, dict) else None
    return level_of(record, text)

