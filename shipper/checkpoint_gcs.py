"""Checkpoints in GCS (SHIPPER_STATE_URL=gs://bucket/prefix), shared by every shipper replica.

A GCS object write replaces the object atomically, so a crash leaves the old or the new
checkpoint, as the file checkpointer's rename does. Needs storage.objects.get and
storage.objects.create/delete on the state prefix only.

Each write is conditional on the generation this process last read or wrote
(`ifGenerationMatch`): a replica that lost its lease while a write of its own was stalled (and
retried) cannot put an older cursor over the new leader's, which would make it ship again what
was shipped. A write refused so (412) is read back: the replica's own payload there means an
earlier attempt of the same write landed; anything else, that another replica writes this
checkpoint now - a CheckpointError, the pass fails and commits nothing more."""

from __future__ import annotations

from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.cloud.storage.retry import DEFAULT_RETRY

from shipper.checkpoint import CHECKPOINT_FILE_NAME, CheckpointError, decode_checkpoint, encode_checkpoint
from shipper.models import Cursor

REQUEST_TIMEOUT_SECONDS = 30.0
RETRY_DEADLINE_SECONDS = 60.0
# requests' own errors escape the google client once its retries are spent
STORAGE_ERRORS = (gexc.GoogleAPIError, requests.RequestException)


def parse_gs_url(url: str) -> tuple[str, str]:
    """`gs://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    if not url.startswith("gs://"):
        raise ValueError(f"state URL {url!r} must look like gs://bucket/prefix")
    bucket, _, prefix = url.removeprefix("gs://").partition("/")
    if not bucket:
        raise ValueError(f"state URL {url!r} names no bucket")
    return bucket, prefix.strip("/")


class GcsCheckpointer:
    def __init__(
        self, url: str, client: Any, *, retry_deadline_seconds: float = RETRY_DEADLINE_SECONDS
    ) -> None:
        bucket_name, self.prefix = parse_gs_url(url)
        self.bucket = client.bucket(bucket_name)
        self.retry = DEFAULT_RETRY.with_timeout(retry_deadline_seconds)
        self._generations: dict[str, int] = {}  # object name -> generation last read or written (0: none)

    def object_name(self, source_id: str) -> str:
        name = f"{source_id}/{CHECKPOINT_FILE_NAME}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def location(self, source_id: str) -> str:
        return f"gs://{self.bucket.name}/{self.object_name(source_id)}"

    def load(self, source_id: str) -> Cursor | None:
        name = self.object_name(source_id)
        where = self.location(source_id)
        blob = self.bucket.blob(name)
        try:
            raw = blob.download_as_bytes(timeout=REQUEST_TIMEOUT_SECONDS, retry=self.retry)
        except gexc.NotFound:
            self._generations[name] = 0
            return None
        except STORAGE_ERRORS as exc:
            raise CheckpointError(f"cannot read checkpoint {where}: {exc}") from exc
        self._remember(name, blob)
        return decode_checkpoint(raw, where)

    def commit(self, source_id: str, cursor: Cursor) -> None:
        name = self.object_name(source_id)
        where = self.location(source_id)
        payload = encode_checkpoint(source_id, cursor)
        blob = self.bucket.blob(name)
        try:
            blob.upload_from_string(
                payload, content_type="application/json", timeout=REQUEST_TIMEOUT_SECONDS, retry=self.retry,
                if_generation_match=self._generations.get(name),  # None (never read here): unconditional
            )
        except gexc.PreconditionFailed as exc:
            self._check_own_write(name, payload, where, exc)
            return
        except STORAGE_ERRORS as exc:
            raise CheckpointError(f"cannot write checkpoint {where}: {exc}") from exc
        self._remember(name, blob)

    def _remember(self, name: str, blob: Any) -> None:
        if blob.generation is not None:
            self._generations[name] = int(blob.generation)

    def _check_own_write(self, name: str, payload: bytes, where: str, refused: Exception) -> None:
        """A conditional write was refused: it stands if the object holds this very payload (an
        earlier attempt of the write landed, and its answer was lost), else another writer won."""
        current = self.bucket.blob(name)
        try:
            held = current.download_as_bytes(timeout=REQUEST_TIMEOUT_SECONDS, retry=self.retry)
        except STORAGE_ERRORS as exc:
            raise CheckpointError(f"cannot read {where} back after a refused write: {exc}") from exc
        if held != payload:
            raise CheckpointError(
                f"checkpoint {where} was written by another shipper since this one read it: another "
                "replica leads now (or shares SHIPPER_STATE_URL without leader election)"
            ) from refused
        self._remember(name, current)
