"""Listing a bucket's objects under the configured prefixes, and the storage client."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.auth.exceptions import GoogleAuthError

from shipper.sources.base import SourceError

# API answers, credentials and network problems: the pass fails as a SourceError (nothing committed)
ACCESS_ERRORS = (gexc.GoogleAPICallError, GoogleAuthError, requests.exceptions.RequestException)


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    name: str
    prefix: str
    generation: int
    size: int
    updated_ns: int
    content_encoding: str | None

    @property
    def gzip_by_metadata(self) -> bool:
        return (self.content_encoding or "").lower() == "gzip" or self.name.endswith(".gz")


def list_objects(client: Any, bucket: str, prefixes: list[str]) -> dict[str, ObjectInfo]:
    """Every object under `prefixes` (the first prefix that lists it names its prefix)."""
    found: dict[str, ObjectInfo] = {}
    try:
        for prefix in prefixes:
            for blob in client.list_blobs(bucket, prefix=prefix):
                if blob.name.endswith("/") or blob.name in found:
                    continue
                stamp = blob.updated or blob.time_created
                updated_ns = int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1_000
                found[blob.name] = ObjectInfo(
                    blob.name, prefix, int(blob.generation), int(blob.size or 0), updated_ns,
                    blob.content_encoding,
                )
    except ACCESS_ERRORS as exc:
        raise SourceError(f"cannot list gcs bucket {bucket!r}: {exc}") from exc
    return found


def describe_prefixes(client: Any, bucket: str, prefixes: list[str], limit: int) -> str:
    """Lists each prefix (needs storage.objects.list only, as a pass does), up to `limit` objects."""
    found: dict[str, int] = {}
    try:
        for prefix in prefixes:
            found[prefix] = sum(1 for _ in client.list_blobs(bucket, prefix=prefix, max_results=limit))
    except ACCESS_ERRORS as exc:
        raise SourceError(f"gcs bucket {bucket!r}: {exc}") from exc
    listed = ", ".join(f"{prefix}: {count}{'+' if count >= limit else ''}" for prefix, count in found.items())
    return f"gcs bucket {bucket} readable; objects per prefix: {listed}"


def build_storage_client() -> Any:
    """google-cloud-storage client: anonymous against STORAGE_EMULATOR_HOST, default creds else."""
    import google.cloud.storage as storage  # the package ships no type information

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        project = os.environ.get("GOOGLE_CLOUD_PROJECT", "local-emulator")
        return storage.Client(project=project, credentials=AnonymousCredentials())
    return storage.Client()
