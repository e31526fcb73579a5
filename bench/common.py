"""Helpers the benches share: the repository root, a free local port, waiting for a server to
answer, percentiles, and a request target."""

from __future__ import annotations

import socket
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
NS = 1_000_000_000
READY_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers 200; give up at once if `process` (the server) has exited."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"{url}: process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"not ready within {READY_TIMEOUT_SECONDS}s: {url}")


def percentile(values: Sequence[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]
