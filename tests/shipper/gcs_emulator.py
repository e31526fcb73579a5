"""A real `gcp-storage-emulator` on 127.0.0.1 (free port), in-process, for GCS source tests.

The emulator ignores start_offset, page tokens and generation preconditions and returns gzip
bytes raw (no decompressive transcoding); it honours Range headers, which is what GcsSource's
ranged reads rely on."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.conftest import free_port

EMULATOR_PROJECT = "test-project"


@dataclass
class GcsEmulator:
    url: str
    client: storage.Client

    def bucket(self, name: str) -> storage.Bucket:
        bucket = self.client.bucket(name)
        if not bucket.exists():
            bucket = self.client.create_bucket(name)
        return bucket


def make_client() -> storage.Client:
    return storage.Client(project=EMULATOR_PROJECT, credentials=AnonymousCredentials())


@contextlib.contextmanager
def running_emulator() -> Iterator[GcsEmulator]:
    """Start the emulator (in memory), point STORAGE_EMULATOR_HOST at it, stop it afterwards."""
    port = free_port()
    emulator_logger = logging.getLogger("gcp_storage_emulator")
    emulator_level = emulator_logger.level
    emulator_logger.setLevel(logging.WARNING)  # its per-request lines would flood captured logs
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = url
    try:
        yield GcsEmulator(url=url, client=make_client())
    finally:
        server.stop()
        emulator_logger.setLevel(emulator_level)
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
