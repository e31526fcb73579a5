from __future__ import annotations

import shutil
import socket
import subprocess
from typing import Any

TOOLS = ("java", "gcloud", "kubectl", "promtool", "amtool", "prometheus", "prometheus-alertmanager",
         "docker-compose", "redis-server")


def pytest_report_header(config: object) -> list[str]:
    """Show which external tools this run has, so CI output proves tool-backed tests ran."""
    found = {tool: shutil.which(tool) for tool in TOOLS}
    return [
        "tools present: " + ", ".join(t for t, p in found.items() if p),
        "tools absent (their tests skip with a reason): "
        + (", ".join(t for t, p in found.items() if not p) or "none"),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[Any], timeout: float = 10, kill_timeout: float = 5) -> None:
    """Terminate `process`; kill it if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=kill_timeout)
