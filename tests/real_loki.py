"""A real Grafana Loki for tests: the project's own `ops-stack/loki/loki.yaml`, with ports, paths
and the ruler's Alertmanager overridden by flags, started once per test session.

The binary is found through `LOKI_BINARY`, else `loki` on PATH (`.ci/run` points LOKI_BINARY at
`../shared/tools/loki/loki`). Without one, tests that use the `real_loki` fixture skip with that
reason. Tests isolate by their own label values (`run_id()`), never by a Loki of their own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
LOKI_CONFIG = REPO / "ops-stack" / "loki" / "loki.yaml"
LOKI_RULES = REPO / "ops-stack" / "loki" / "rules"
LOKI_VERSION = "3.7.6"  # the version the project is tested with; docker-compose-ops.yml pins it
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 20.0
# ingestion rate limits out of the way (throughput benches, pushes larger than the defaults allow)
RAISED_LIMITS = (
    "-distributor.ingestion-rate-limit-mb=10000", "-distributor.ingestion-burst-size-mb=20000",
    "-ingester.per-stream-rate-limit=10000MB", "-ingester.per-stream-rate-limit-burst=20000MB",
)


def find_loki_binary(name: str = "loki") -> str | None:
    """`LOKI_BINARY` (its directory also holds `logcli`), else `name` on PATH."""
    configured = os.environ.get("LOKI_BINARY")
    if configured:
        candidate = Path(configured)
        if name != "loki":
            candidate = candidate.with_name(name)
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    return shutil.which(name)


def run_id(prefix: str = "t") -> str:
    """A label value no other test (or earlier session against the same Loki) uses."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@dataclass
class RealLoki:
    """A running Loki: `url`, plus helpers to push, flush and query in Loki's own formats."""

    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    extra_flags: tuple[str, ...] = ()
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30.0)

    def push(self, streams: Iterable[tuple[Mapping[str, str], Iterable[tuple[int, str]]]]) -> httpx.Response:
        """JSON push of `(labels, [(ts_ns, line), ...])` streams; raises unless Loki answered 2xx."""
        body = push_body(streams)
        response = self.http.post("/loki/api/v1/push", json=body)
        response.raise_for_status()
        return response

    def push_raw(self, body: Mapping[str, Any]) -> httpx.Response:
        return self.http.post("/loki/api/v1/push", json=body)

    def flush(self) -> None:
        """Make recently pushed old entries visible: Loki serves ranges older than ~2 h from its store."""
        self.http.post("/flush").raise_for_status()

    def query_range(self, query: str, *, start_ns: int, end_ns: int, limit: int = 5000,
                    direction: str = "forward", **params: Any) -> dict[str, Any]:
        response = self.http.get("/loki/api/v1/query_range", params={
            "query": query, "start": start_ns, "end": end_ns, "limit": limit, "direction": direction,
            **params,
        })
        response.raise_for_status()
        data: dict[str, Any] = response.json()["data"]
        return data

    def all_lines(self, selector: str, *, start_ns: int, end_ns: int, page: int = 5000) -> list[str]:
        """Every line matching `selector` in [start, end), forward, paging by timestamp."""
        lines: list[str] = []
        seen_at_boundary: set[tuple[str, int, str]] = set()
        cursor = start_ns
        while True:
            data = self.query_range(selector, start_ns=cursor, end_ns=end_ns, limit=page)
            entries = sorted(
                (int(ts), stream_key(s["stream"]), line)
                for s in data["result"] for ts, line, *_ in s["values"]
            )
            fresh = [e for e in entries if (e[1], e[0], e[2]) not in seen_at_boundary]
            lines.extend(line for _, _, line in fresh)
            if len(entries) < page:
                return lines
            last_ts = entries[-1][0]
            if last_ts == cursor and not fresh:
                raise AssertionError(f"more than {page} entries share timestamp {cursor}")
            seen_at_boundary = {(key, ts, line) for ts, key, line in entries if ts == last_ts}
            cursor = last_ts

    def count(self, selector: str, *, start_ns: int, end_ns: int) -> int:
        """`count_over_time` over the whole range: what metric queries and alert rules see."""
        seconds = max(1, (end_ns - start_ns) // 1_000_000_000 + 1)
        response = self.http.get("/loki/api/v1/query", params={
            "query": f"sum(count_over_time({selector}[{seconds}s]))", "time": end_ns,
        })
        response.raise_for_status()
        result = response.json()["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def stream_key(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def push_body(streams: Iterable[tuple[Mapping[str, str], Iterable[tuple[int, str]]]]) -> dict[str, Any]:
    return {"streams": [
        {"stream": dict(labels), "values": [[str(ts), line] for ts, line in entries]}
        for labels, entries in streams
    ]}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_loki(binary: str, workdir: Path, *, alertmanager_url: str | None = None,
               rules_dir: Path = LOKI_RULES, extra_flags: Iterable[str] = ()) -> RealLoki:
    """Start Loki from the project's config with everything machine-specific overridden by flags."""
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port = _free_port(), _free_port()
    flags = [
        f"-config.file={LOKI_CONFIG}",
        "-server.http-listen-address=127.0.0.1", f"-server.http-listen-port={http_port}",
        "-server.grpc-listen-address=127.0.0.1", f"-server.grpc-listen-port={grpc_port}",
        f"-common.path-prefix={workdir}",
        f"-common.storage.filesystem.chunk-directory={workdir / 'chunks'}",
        f"-common.storage.filesystem.rules-directory={workdir / 'rules'}",
        f"-compactor.working-directory={workdir / 'compactor'}",
        f"-ruler.rule-path={workdir / 'rules-temp'}",
        f"-ruler.wal.dir={workdir / 'ruler-wal'}",
        f"-ruler.storage.local.directory={rules_dir}",
        f"-ruler.alertmanager-url={alertmanager_url or 'http://127.0.0.1:9'}",
        "-ingester.min-ready-duration=0s",
        "-log.level=warn",
        *extra_flags,
    ]
    log_path = workdir / "loki.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(binary).resolve()), *flags], stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
    loki = RealLoki(f"http://127.0.0.1:{http_port}", process, workdir, log_path, tuple(extra_flags))
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Loki exited with {process.returncode}:\n{loki.log_tail()}")
        try:
            if loki.http.get("/ready", timeout=2).text.strip() == "ready":
                return loki
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    loki.stop()
    raise RuntimeError(f"Loki was not ready within {READY_TIMEOUT_SECONDS:g}s:\n{loki.log_tail()}")


def flush_and_wait(loki: RealLoki, *, timeout: float = 60.0) -> None:
    """`POST /flush`, then wait until the ingester's flush queue is empty and its count of flushed
    chunks has stopped moving: a query made while chunks are still being written would miss them
    (and Loki's results cache could keep that answer)."""
    loki.flush()
    deadline = time.monotonic() + timeout
    last: float | None = None
    while time.monotonic() < deadline:
        time.sleep(0.5)
        queued, flushed = 0.0, 0.0
        for line in loki.http.get("/metrics").text.splitlines():
            if line.startswith("loki_ingester_flush_queue_length"):
                queued += float(line.rsplit(" ", 1)[1])
            elif line.startswith("loki_ingester_chunks_flushed_total"):
                flushed += float(line.rsplit(" ", 1)[1])
        if queued == 0 and flushed == last:
            return
        last = flushed
    raise AssertionError(f"Loki did not finish flushing within {timeout:g}s")



def own_loki(tmp_path_factory: pytest.TempPathFactory, name: str, flags: Iterable[str]) -> Iterator[RealLoki]:
    """A Loki from the project's config with `flags` on top, for a fixture to yield from (the
    session's, or a module's own); skips when there is no binary."""
    binary = find_loki_binary()
    if binary is None:
        pytest.skip("no Loki binary: set LOKI_BINARY or put loki on PATH (.ci/run uses ../shared/tools/loki)")
    loki = start_loki(binary, Path(tmp_path_factory.mktemp(name)), extra_flags=flags)
    yield loki
    loki.stop()
