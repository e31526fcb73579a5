"""Checkpoints in GCS (SHIPPER_STATE_URL=gs://bucket/prefix), shared by every shipper replica.

A GCS object write replaces the object atomically, so a crash leaves the old or the new
checkpoint, as the file checkpointer's rename does. Needs storage.objects.get and
storage.objects.create/delete on the state prefix only."""

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

    def object_name(self, source_id: str) -> str:
        name = f"{source_id}/{CHECKPOINT_FILE_NAME}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def location(self, source_id: str) -> str:
        return f"gs://{self.bucket.name}/{self.object_name(source_id)}"

    def load(self, source_id: str) -> Cursor | None:
        name = self.object_name(source_id)
        where = self.location(source_id)
        try:
            raw = self.bucket.blob(name).download_as_bytes(timeout=REQUEST_TIMEOUT_SECONDS, retry=self.retry)
        except gexc.NotFound:
            return None
        except STORAGE_ERRORS as exc:
            raise CheckpointError(f"cannot read checkpoint {where}: {exc}") from exc
        return decode_checkpoint(raw, where)

    def commit(self, source_id: str, cursor: Cursor) -> None:
        name = self.object_name(source_id)
        try:
            self.bucket.blob(name).upload_from_string(
                encode_checkpoint(source_id, cursor), content_type="application/json",
                timeout=REQUEST_TIMEOUT_SECONDS, retry=self.retry,
            )
        except STORAGE_ERRORS as exc:
            raise CheckpointError(f"cannot write checkpoint {self.location(source_id)}: {exc}") from exc
