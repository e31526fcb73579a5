"""Leader election with a coordination.k8s.io/v1 Lease, so only one shipper replica runs the jobs.

`LeaderElector.is_leader()` is the scheduler's `should_run` hook. Single-replica mode (the
default: SHIPPER_LEADER_ELECTION=false) needs no Lease and is always leader.

The protocol follows client-go's leaderelection: read the Lease; create it when absent; renew it
when we hold it; take it over when its holder has not renewed for `lease_duration_seconds`; every
write carries the resourceVersion that was read, so of two replicas racing for the same Lease the
API server lets exactly one win (the other gets 409 Conflict and stays follower). Expiry is
judged on our own monotonic clock, from the moment we *observed* the Lease change, never by
comparing the holder's renewTime with our wall clock, so clock skew between nodes cannot make two
leaders. A leader that cannot renew (API down) steps down once its own lease would have expired.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError

from shipper.config import ShipperSettings
from shipper.metrics import IS_LEADER

log = logging.getLogger(__name__)

RENEW_FRACTION = 3  # try to renew every lease_duration / 3, like client-go's retry period
REQUEST_TIMEOUT_SECONDS = 10.0


def default_identity() -> str:
    """The pod name (downward API POD_NAME, else the hostname, which is the pod name in k8s)."""
    return os.environ.get("POD_NAME") or socket.gethostname()


class LeaderElector:
    def __init__(
        self,
        api_client: k8s.ApiClient | None,
        *,
        namespace: str,
        lease_name: str,
        identity: str,
        lease_duration_seconds: int,
        single_replica: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not single_replica and api_client is None:
            raise ValueError("leader election needs a Kubernetes API client (or single_replica=True)")
        self.single_replica = single_replica
        self.namespace = namespace
        self.lease_name = lease_name
        self.identity = identity
        self.lease_duration = float(lease_duration_seconds)
        self.api = k8s.CoordinationV1Api(api_client) if api_client is not None else None
        self.clock = clock
        self.wall_clock = wall_clock
        self._leading = single_replica
        self._renewed_at: float | None = None  # our clock, when our last write succeeded
        self._observed_version: str | None = None
        self._observed_at = 0.0  # our clock, when we last saw the Lease change
        self._lock = threading.Lock()
        self._released = False  # after release() (shutdown) this elector never leads again
        IS_LEADER.set(1 if single_replica else 0)

    @classmethod
    def from_settings(
        cls, settings: ShipperSettings, api_client: k8s.ApiClient | None = None
    ) -> LeaderElector:
        single = not settings.shipper_leader_election
        if not single and api_client is None:
            from shipper.sources.pods import build_api_client

            api_client = build_api_client()
        return cls(
            api_client,
            namespace=os.environ.get("POD_NAMESPACE") or settings.kubernetes_namespace,
            lease_name=settings.shipper_lease_name,
            identity=default_identity(),
            lease_duration_seconds=settings.shipper_lease_duration_seconds,
            single_replica=single,
        )

    # -- public -------------------------------------------------------------------------------

    def is_leader(self) -> bool:
        if self.single_replica:
            return True
        with self._lock:
            if self._released:
                return False
            now = self.clock()
            renew_every = self.lease_duration / RENEW_FRACTION
            fresh = self._renewed_at is not None and now - self._renewed_at < renew_every
            if not (self._leading and fresh):
                self._try_acquire_or_renew(now)
            return self._leading

    def release(self) -> None:
        """Give the Lease up (on shutdown) so another replica takes over without waiting. Final: a
        renewal racing with the shutdown must not take the freed Lease back."""
        if self.single_replica or self.api is None:
            return
        with self._lock:
            self._released = True
            if not self._leading:
                return
            try:
                lease = self._read()
                if lease is not None and lease.spec and lease.spec.holder_identity == self.identity:
                    lease.spec.holder_identity = None
                    lease.spec.renew_time = None
                    self.api.replace_namespaced_lease(self.lease_name, self.namespace, lease,
                                                      _request_timeout=REQUEST_TIMEOUT_SECONDS)
            except ApiException as exc:
                log.warning("leader: could not release lease %s: %s %s",
                            self.lease_name, exc.status, exc.reason)
            self._set_leading(False)

    def renew_in_background(self, stop: threading.Event) -> threading.Thread:
        """Keep the Lease renewed during long runs; the thread ends when `stop` is set."""

        def loop() -> None:
            while not stop.wait(self.lease_duration / RENEW_FRACTION):
                try:
                    self.is_leader()
                except Exception:  # a dead renewer would let the lease lapse mid-pass
                    log.exception("leader: renewing lease %s failed", self.lease_name)

        thread = threading.Thread(target=loop, name="lease-renewer", daemon=True)
        thread.start()
        return thread

    # -- protocol -----------------------------------------------------------------------------

    def _try_acquire_or_renew(self, now: float) -> None:
        try:
            lease = self._read()
            if lease is None:
                self._create(now)
                return
            version = lease.metadata.resource_version if lease.metadata else None
            if version != self._observed_version:
                # observed when the read *returned* (as client-go does): the holder may have
                # renewed while our request was in flight, so `now` could predate its renewal
                self._observed_version, self._observed_at = version, self.clock()
            spec = lease.spec or k8s.V1LeaseSpec()
            holder = spec.holder_identity
            if holder == self.identity:
                self._write(lease, now, transitions=spec.lease_transitions or 0, acquired=spec.acquire_time)
            elif not holder or now - self._observed_at > (spec.lease_duration_seconds or self.lease_duration):
                self._write(lease, now, transitions=(spec.lease_transitions or 0) + 1, acquired=None)
            else:
                self._set_leading(False)
        except ApiException as exc:
            if exc.status == 409:
                log.info("leader: lost the race for lease %s (409)", self.lease_name)
                self._set_leading(False)
                return
            log.warning("leader: lease %s: %s %s", self.lease_name, exc.status, exc.reason)
            self._keep_while_valid()
        except TransportError as exc:  # API server unreachable: like a failed renewal, not a crash
            log.warning("leader: lease %s: API unreachable: %s", self.lease_name, exc)
            self._keep_while_valid()

    def _keep_while_valid(self) -> None:
        """Could not renew: stay leader only while our own last renewal is within the lease - by
        the clock when the failed request returned (it may have taken longer than the lease)."""
        still_valid = self._renewed_at is not None and self.clock() - self._renewed_at < self.lease_duration
        self._set_leading(self._leading and still_valid)

    def _read(self) -> k8s.V1Lease | None:
        assert self.api is not None
        try:
            return self.api.read_namespaced_lease(self.lease_name, self.namespace,
                                                  _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _create(self, now: float) -> None:
        assert self.api is not None
        stamp = self.wall_clock()
        lease = k8s.V1Lease(
            metadata=k8s.V1ObjectMeta(name=self.lease_name, namespace=self.namespace),
            spec=k8s.V1LeaseSpec(holder_identity=self.identity,
                                 lease_duration_seconds=int(self.lease_duration),
                                 acquire_time=stamp, renew_time=stamp, lease_transitions=0),
        )
        created = self.api.create_namespaced_lease(
            self.namespace, lease, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
        self._observed_version = created.metadata.resource_version if created.metadata else None
        self._observed_at = self._renewed_at = now
        self._set_leading(True)

    def _write(self, lease: k8s.V1Lease, now: float, *, transitions: int, acquired: datetime | None) -> None:
        assert self.api is not None
        stamp = self.wall_clock()
        lease.spec = k8s.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=int(self.lease_duration),
            acquire_time=acquired or stamp,
            renew_time=stamp,
            lease_transitions=transitions,
        )
        replaced = self.api.replace_namespaced_lease(self.lease_name, self.namespace, lease,
                                                     _request_timeout=REQUEST_TIMEOUT_SECONDS)
        self._observed_version = replaced.metadata.resource_version if replaced.metadata else None
        self._observed_at = self._renewed_at = now
        if not self._leading:
            log.info("leader: %s now holds lease %s/%s", self.identity, self.namespace, self.lease_name)
        self._set_leading(True)

    def _set_leading(self, leading: bool) -> None:
        self._leading = leading
        IS_LEADER.set(1 if leading else 0)
