"""The GCS emulator fixtures of the shipper's tests: one emulator per test module, and a new
bucket per test (a module may override `emulator`, e.g. to seed it)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from tests.shipper.gcs_emulator import GcsEmulator, running_emulator

_bucket_names = itertools.count()


@pytest.fixture(scope="module")
def emulator() -> Iterator[GcsEmulator]:
    with running_emulator() as running:
        yield running


@pytest.fixture
def bucket(emulator: GcsEmulator) -> Any:
    return emulator.bucket(f"bucket-{next(_bucket_names)}")
