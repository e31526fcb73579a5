"""The real Firestore emulator from the Cloud SDK, started with Java on 127.0.0.1 for a test session.

Import the fixtures into a test module (`from tests.firestore_emulator import firestore_emulator,
firestore_client`). The emulator enforces security rules only for end-user tokens, never for the
client libraries' admin access, so permission errors are simulated at the client (see
tests/shipper/sources/test_firestore.py, OneCollectionDenied).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, stop_process

EMULATOR_MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
JAR_RELATIVE_PATH = "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
START_TIMEOUT_SECONDS = 60.0
PROJECT_ID = "shipper-test"


@dataclass(frozen=True)
class FirestoreEmulator:
    host: str
    project_id: str

    def reset(self) -> None:
        url = f"http://{self.host}/emulator/v1/projects/{self.project_id}/databases/(default)/documents"
        httpx.delete(url, timeout=10).raise_for_status()


def find_emulator_jar() -> tuple[Path | None, str]:
    """The jar path, or None and the reason it cannot be used."""
    if shutil.which("java") is None:
        return None, "java is not on PATH"
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None, "gcloud (Cloud SDK) is not on PATH"
    try:
        sdk_root = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"gcloud info failed: {exc}"
    jar = Path(sdk_root) / JAR_RELATIVE_PATH
    if not jar.is_file():
        return None, f"Firestore emulator jar not found at {jar}"
    return jar, ""


def _wait_until_up(process: subprocess.Popen[bytes], host: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Firestore emulator exited with {process.returncode}")
        try:
            if httpx.get(f"http://{host}/", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"Firestore emulator did not answer on {host} within {START_TIMEOUT_SECONDS}s")


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    jar, reason = find_emulator_jar()
    if jar is None:
        pytest.skip(f"Firestore emulator unavailable: {reason}")
    host = f"127.0.0.1:{free_port()}"
    command = [
        "java", "-Duser.language=en", "-cp", str(jar), EMULATOR_MAIN_CLASS, "start",
        "--host=127.0.0.1", f"--port={host.rsplit(':', 1)[1]}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    try:
        _wait_until_up(process, host)
        os.environ["FIRESTORE_EMULATOR_HOST"] = host
        yield FirestoreEmulator(host=host, project_id=PROJECT_ID)
    finally:
        if previous is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous
        stop_process(process, timeout=15, kill_timeout=15)


@pytest.fixture
def firestore_client(firestore_emulator: FirestoreEmulator) -> Iterator[object]:
    from google.cloud import firestore

    firestore_emulator.reset()
    client = firestore.Client(project=firestore_emulator.project_id)
    yield client
    client.close()
