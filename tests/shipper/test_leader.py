"""LeaderElector against tests/kube_api_stub.py (Leases with resourceVersion conflicts)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from urllib3.exceptions import HTTPError as TransportError

from shipper.checkpoint import MemoryCheckpointer
from shipper.config import ShipperSettings
from shipper.leader import LeaderElector
from shipper.metrics import REGISTRY
from shipper.models import LogRecord
from shipper.pipeline import Pipeline
from shipper.sinks import PushResult
from shipper.sources.memory import MemorySource
from tests import kube_api_stub
from tests.conftest import free_port
from tests.kube_api_stub import KubeApi
from tests.shipper.test_pipeline import RecordingSink, records

kube_api = kube_api_stub.kube_api

LEASE = "loki-shipper"
NAMESPACE = "gpt"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(kube: KubeApi, identity: str, clock: Clock, duration: int = 30) -> LeaderElector:
    return LeaderElector(kube.api_client(), namespace=NAMESPACE, lease_name=LEASE, identity=identity,
                         lease_duration_seconds=duration, clock=clock)


def holder(kube: KubeApi) -> str | None:
    return kube.state.leases[(NAMESPACE, LEASE)]["spec"].get("holderIdentity")


def is_leader_gauge() -> float | None:
    return REGISTRY.get_sample_value("shipper_is_leader")


def test_single_replica_is_always_leader_without_a_lease() -> None:
    settings = ShipperSettings()
    assert settings.shipper_leader_election is False
    single = LeaderElector.from_settings(settings)
    assert single.single_replica and single.is_leader()
    assert is_leader_gauge() == 1


def test_only_one_of_two_leads_and_the_other_takes_over_after_expiry(kube_api: KubeApi) -> None:
    clock = Clock()
    first, second = elector(kube_api, "shipper-a", clock), elector(kube_api, "shipper-b", clock)

    assert first.is_leader() is True
    assert is_leader_gauge() == 1
    assert second.is_leader() is False
    assert is_leader_gauge() == 0
    assert holder(kube_api) == "shipper-a"
    assert kube_api.state.leases[(NAMESPACE, LEASE)]["spec"]["leaseDurationSeconds"] == 30

    clock.now += 15  # the leader renews; the follower keeps waiting
    assert first.is_leader() is True
    clock.now += 5
    assert second.is_leader() is False
    version_after_renewal = kube_api.state.leases[(NAMESPACE, LEASE)]["metadata"]["resourceVersion"]

    clock.now += 25  # the leader crashed: 25s since the follower saw the last renewal
    assert second.is_leader() is False
    clock.now += 6  # 31s > lease duration
    assert second.is_leader() is True
    lease = kube_api.state.leases[(NAMESPACE, LEASE)]
    assert lease["spec"]["holderIdentity"] == "shipper-b"
    assert lease["spec"]["leaseTransitions"] == 1
    assert lease["metadata"]["resourceVersion"] != version_after_renewal

    assert first.is_leader() is False  # the old leader comes back and sees the new holder


def test_concurrent_takeover_has_exactly_one_winner(kube_api: KubeApi) -> None:
    clock = Clock()
    old = elector(kube_api, "old", clock)
    assert old.is_leader()
    contenders = [elector(kube_api, f"replica-{index}", clock) for index in range(5)]
    assert not any(c.is_leader() for c in contenders)
    clock.now += 31  # the old leader stopped renewing

    barrier = threading.Barrier(len(contenders))
    results: dict[str, bool] = {}

    def contend(candidate: LeaderElector) -> None:
        barrier.wait(timeout=10)
        results[candidate.identity] = candidate.is_leader()

    threads = [threading.Thread(target=contend, args=(c,)) for c in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    winners = [name for name, leading in results.items() if leading]
    assert len(results) == 5 and len(winners) == 1
    assert holder(kube_api) == winners[0]
    writes = [r.status for r in kube_api.state.requests if r.method == "PUT"]
    assert writes.count(200) == 1  # every other write that raced was refused with 409
    assert set(writes) <= {200, 409}


def test_leader_steps_down_when_it_cannot_renew(kube_api: KubeApi) -> None:
    clock = Clock()
    leader = elector(kube_api, "shipper-a", clock)
    assert leader.is_leader()
    kube_api.state.fail(r"/leases", 500)
    clock.now += 15
    assert leader.is_leader() is True  # its own lease is still valid
    clock.now += 20
    assert leader.is_leader() is False


def test_release_lets_another_replica_lead_at_once(kube_api: KubeApi) -> None:
    clock = Clock()
    first, second = elector(kube_api, "shipper-a", clock), elector(kube_api, "shipper-b", clock)
    assert first.is_leader() and not second.is_leader()
    first.release()
    assert holder(kube_api) is None
    assert second.is_leader() is True
    assert first.is_leader() is False


def test_expiry_counts_from_when_the_read_returned_not_when_it_was_sent(kube_api: KubeApi) -> None:
    clock = Clock()
    leader, follower = elector(kube_api, "shipper-a", clock), elector(kube_api, "shipper-b", clock)
    assert leader.is_leader()  # t=1000
    clock.now += 11
    read = follower.api.read_namespaced_lease

    def slow_read(*args: object, **kwargs: object) -> object:
        clock.now += 1
        assert leader.is_leader()  # renews at t=1012 while the follower's read is in flight
        clock.now += 1
        return read(*args, **kwargs)  # answers at t=1013 with the renewed Lease

    follower.api.read_namespaced_lease = slow_read  # type: ignore[method-assign]
    assert follower.is_leader() is False  # called at t=1011
    follower.api.read_namespaced_lease = read  # type: ignore[method-assign]

    clock.now = 1041.5  # the leader (renewed at 1012) holds the lease until 1042 by its own clock
    assert follower.is_leader() is False, "two leaders: the follower took over a lease still held"
    clock.now = 1043.5
    assert follower.is_leader() is True


def test_unreachable_api_is_a_failed_renewal_not_a_crash(kube_api: KubeApi) -> None:
    clock = Clock()
    leader = elector(kube_api, "shipper-a", clock)
    assert leader.is_leader()
    leader.api.api_client.configuration.host = f"http://127.0.0.1:{free_port()}"  # nothing listens
    clock.now += 15
    assert leader.is_leader() is True  # its own lease is still valid
    clock.now += 20
    assert leader.is_leader() is False
    assert is_leader_gauge() == 0


def test_a_failed_renewal_that_outlasts_the_lease_steps_down(kube_api: KubeApi) -> None:
    """The renewal's request hangs past the lease (timeouts and retries) and fails: by the time it
    returns another replica may lead, so the answer is no longer "leader"."""
    clock = Clock()
    leader = elector(kube_api, "shipper-a", clock)
    assert leader.is_leader()  # renewed at t=1000, the lease runs to 1030
    clock.now += 25
    read = leader.api.read_namespaced_lease

    def hanging_read(*args: object, **kwargs: object) -> object:
        clock.now += 40
        raise TransportError("read timed out, three times")

    leader.api.read_namespaced_lease = hanging_read  # type: ignore[method-assign]
    assert leader.is_leader() is False  # called at t=1025, answered at t=1065
    leader.api.read_namespaced_lease = read  # type: ignore[method-assign]


def test_background_renewer_survives_a_failing_round(kube_api: KubeApi) -> None:
    renewer = elector(kube_api, "shipper-a", Clock(), duration=1)  # a round every 1/3 s
    rounds: list[int] = []

    def flaky() -> bool:
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("unexpected answer")
        return True

    renewer.is_leader = flaky  # type: ignore[method-assign]
    stop = threading.Event()
    thread = renewer.renew_in_background(stop)
    try:
        deadline = time.monotonic() + 5
        while len(rounds) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(rounds) >= 3 and thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=5)


def test_a_released_elector_does_not_take_the_lease_back(kube_api: KubeApi) -> None:
    clock = Clock()
    leader = elector(kube_api, "shipper-a", clock)
    assert leader.is_leader()
    leader.release()  # shutdown; the background renewer may still fire once
    clock.now += 15
    assert leader.is_leader() is False
    assert holder(kube_api) is None


def test_a_leader_that_lost_its_lease_mid_pass_stops_shipping(kube_api: KubeApi) -> None:
    """The Lease passes to another replica while a pass is running (the old leader was paused
    past its lease): the pass stops at its next push, it neither ships beside the new leader nor
    commits over its checkpoint."""
    clock = Clock()
    first, second = elector(kube_api, "shipper-a", clock), elector(kube_api, "shipper-b", clock)
    assert first.is_leader() and not second.is_leader()

    class PausingSink(RecordingSink):
        def push(self, batch: Sequence[LogRecord], *, source: str) -> PushResult:
            answer = super().push(batch, source=source)
            if len(self.pushes) == 1:  # a long pause of shipper-a after its first push
                clock.now += 31
                assert second.is_leader() is True
            return answer

    sink, checkpoints = PausingSink(), MemoryCheckpointer()
    # one push at a time: a second push's leadership check, beside the pause, could renew the lease
    pipeline = Pipeline(MemorySource("lead2", records(30), batch_size=10), sink, checkpoints,
                        max_entries=10, push_concurrency=1, still_leading=first.is_leader)
    result = pipeline.run_once()
    assert result.stopped and len(sink.pushes) == 1 and checkpoints.load("lead2") is None
    assert holder(kube_api) == "shipper-b"
