"""GcsCheckpointer against a real gcp-storage-emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from shipper.checkpoint import CheckpointError
from shipper.checkpoint_gcs import GcsCheckpointer, parse_gs_url
from shipper.cli import make_checkpointer
from shipper.config import ShipperSettings
from tests.conftest import free_port
from tests.shipper.gcs_emulator import GcsEmulator, running_emulator

BUCKET = "shipper-state"


@pytest.fixture(scope="module")
def emulator() -> Iterator[GcsEmulator]:
    with running_emulator() as running:
        running.bucket(BUCKET)
        yield running


def test_commit_then_load_round_trips_under_the_prefix(emulator: GcsEmulator) -> None:
    checkpointer = GcsCheckpointer(f"gs://{BUCKET}/prod/shipper", emulator.client)
    cursor = {"objects": {"trades/a.jsonl": {"generation": "7", "offset": 120}}}
    checkpointer.commit("gcs", cursor)
    assert checkpointer.load("gcs") == cursor
    stored = emulator.client.bucket(BUCKET).blob("prod/shipper/gcs/checkpoint.json").download_as_bytes()
    assert json.loads(stored) == {"version": 1, "source": "gcs", "cursor": cursor}
    assert checkpointer.location("gcs") == f"gs://{BUCKET}/prod/shipper/gcs/checkpoint.json"


def test_a_later_commit_replaces_the_earlier_one(emulator: GcsEmulator) -> None:
    checkpointer = GcsCheckpointer(f"gs://{BUCKET}", emulator.client)
    for offset in range(3):
        checkpointer.commit("firestore-trades", {"offset": offset})
    assert checkpointer.load("firestore-trades") == {"offset": 2}


def test_missing_checkpoint_is_none(emulator: GcsEmulator) -> None:
    assert GcsCheckpointer(f"gs://{BUCKET}/nowhere", emulator.client).load("never-ran") is None


def test_corrupt_checkpoint_is_a_clear_error_naming_the_object(emulator: GcsEmulator) -> None:
    emulator.client.bucket(BUCKET).blob("broken/gcs/checkpoint.json").upload_from_string(b"{not json")
    with pytest.raises(CheckpointError, match=f"gs://{BUCKET}/broken/gcs/checkpoint.json"):
        GcsCheckpointer(f"gs://{BUCKET}/broken", emulator.client).load("gcs")


def test_unreachable_storage_is_a_checkpoint_error_not_a_crash() -> None:
    client = storage.Client(project="p", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": f"http://127.0.0.1:{free_port()}"})
    checkpointer = GcsCheckpointer(f"gs://{BUCKET}", client, retry_deadline_seconds=0.5)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        checkpointer.load("gcs")
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        checkpointer.commit("gcs", {"offset": 1})


@pytest.mark.parametrize("url", ["bucket/prefix", "gs://", "gs:///prefix", "s3://bucket"])
def test_bad_state_url_is_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="gs://"):
        parse_gs_url(url)


def test_settings_choose_gcs_when_a_state_url_is_set(emulator: GcsEmulator) -> None:
    settings = ShipperSettings(loki_url="http://loki:3100", shipper_state_url=f"gs://{BUCKET}/x")
    checkpointer = make_checkpointer(settings)
    assert isinstance(checkpointer, GcsCheckpointer)
    assert checkpointer.location("pods") == f"gs://{BUCKET}/x/pods/checkpoint.json"


def test_settings_with_a_malformed_state_url_are_a_config_problem() -> None:
    from shipper.cli import ConfigProblem

    settings = ShipperSettings(loki_url="http://loki:3100", shipper_state_url="bucket-without-scheme")
    with pytest.raises(ConfigProblem, match="SHIPPER_STATE_URL"):
        make_checkpointer(settings)


class PreconditionBucket:
    """GCS's conditional writes, which the emulator ignores: an upload with if_generation_match
    other than the object's generation (0: no object) is refused with the client's 412 error.
    `lose_answer` stores the next upload and then refuses it, as a retry of a write that landed
    but whose answer was lost is refused."""

    name = "state"

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, int]] = {}
        self.lose_answer = False

    def blob(self, name: str) -> PreconditionBlob:
        return PreconditionBlob(self, name)


class PreconditionBlob:
    def __init__(self, bucket: PreconditionBucket, name: str) -> None:
        self.bucket, self.name, self.generation = bucket, name, None

    def download_as_bytes(self, **_: object) -> bytes:
        if self.name not in self.bucket.objects:
            raise gexc.NotFound("no such object")
        data, self.generation = self.bucket.objects[self.name]
        return data

    def upload_from_string(self, data: bytes, *, if_generation_match: int | None = None, **_: object) -> None:
        current = self.bucket.objects.get(self.name, (b"", 0))[1]
        if if_generation_match is not None and if_generation_match != current:
            raise gexc.PreconditionFailed("conditionNotMet")
        self.bucket.objects[self.name] = (data, current + 1)
        if self.bucket.lose_answer:
            self.bucket.lose_answer = False
            raise gexc.PreconditionFailed("conditionNotMet")  # the retry of what just landed
        self.generation = current + 1


def test_a_replica_that_lost_its_lease_cannot_write_an_older_checkpoint_over_the_leaders() -> None:
    bucket = PreconditionBucket()
    client = type("Client", (), {"bucket": lambda self, name: bucket})()
    old_leader = GcsCheckpointer("gs://state/shipper", client)
    new_leader = GcsCheckpointer("gs://state/shipper", client)
    assert old_leader.load("gcs") is None
    old_leader.commit("gcs", {"offset": 1})
    assert new_leader.load("gcs") == {"offset": 1}
    new_leader.commit("gcs", {"offset": 2})
    with pytest.raises(CheckpointError, match="written by another shipper"):
        old_leader.commit("gcs", {"offset": 1})  # its stalled write, landing late
    assert new_leader.load("gcs") == {"offset": 2}
    new_leader.commit("gcs", {"offset": 3})  # the leader goes on


def test_a_write_that_landed_but_lost_its_answer_stands() -> None:
    bucket = PreconditionBucket()
    client = type("Client", (), {"bucket": lambda self, name: bucket})()
    checkpointer = GcsCheckpointer("gs://state/shipper", client)
    assert checkpointer.load("gcs") is None
    bucket.lose_answer = True
    checkpointer.commit("gcs", {"offset": 5})  # refused on retry, but its payload is there
    checkpointer.commit("gcs", {"offset": 6})  # and the generation it made is the one to match
    assert GcsCheckpointer("gs://state/shipper", client).load("gcs") == {"offset": 6}
