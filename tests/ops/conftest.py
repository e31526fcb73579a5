"""Shared fixtures of the ops-stack tests: the repository paths, the rendered compose file and the
labels schema of DESIGN.md."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose-ops.yml"
ENV_EXAMPLE = REPO / "env.example"
# The contract beside the repository when it is there (the team's checkout), else the copy in docs/
SHARED_DESIGN = REPO.parent / "shared" / "DESIGN.md"
DESIGN = SHARED_DESIGN if SHARED_DESIGN.is_file() else REPO / "docs" / "DESIGN.md"
COMPOSE_TIMEOUT_SECONDS = 60
REQUIRED_SECRETS = ("AI_MONITORING_API_KEY", "ALERTMANAGER_GATEWAY_KEY", "GRAFANA_ADMIN_PASSWORD")


def load_yaml(path: Path) -> Any:
    with path.open("rb") as handle:
        return yaml.safe_load(handle)


def require_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (scripts/test.sh installs it on Debian)")
    return found


def env_file_from_example(target: Path, overrides: dict[str, str]) -> Path:
    """env.example with the given values filled in, written to `target`."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        name = line.split("=", 1)[0]
        if not line.startswith("#") and "=" in line and name in overrides:
            line = f"{name}={overrides[name]}"
        lines.append(line)
    target.write_text("\n".join(lines) + "\n")
    return target


def run_compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """docker-compose with a clean environment, so nothing from the caller's shell leaks in."""
    binary = require_tool("docker-compose")
    clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env_file.parent)}
    return subprocess.run(
        [binary, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        cwd=REPO, env=clean_env, capture_output=True, text=True, timeout=COMPOSE_TIMEOUT_SECONDS,
        check=False,
    )


@dataclass(frozen=True)
class RenderedCompose:
    config: dict[str, Any]
    secrets: dict[str, str]

    def mounts(self, service: str) -> dict[str, str]:
        """Container path -> source (absolute host path or volume name) of a service's volumes."""
        return {v.split(":")[1]: v.split(":")[0] for v in self.config["services"][service].get("volumes", [])}


@pytest.fixture(scope="session")
def rendered_compose(tmp_path_factory: pytest.TempPathFactory) -> RenderedCompose:
    """`docker-compose config` of the compose file with a .env made from env.example."""
    values = {name: secrets.token_urlsafe(24) for name in REQUIRED_SECRETS}
    env_file = env_file_from_example(tmp_path_factory.mktemp("compose") / ".env", values)
    result = run_compose(env_file, "config")
    assert result.returncode == 0, result.stderr
    return RenderedCompose(config=yaml.safe_load(result.stdout), secrets=values)


@dataclass(frozen=True)
class LabelSchema:
    stream_labels: frozenset[str]
    metadata: frozenset[str]
    sources: frozenset[str]


_BACKTICKED = re.compile(r"`([^`]+)`")


def parse_label_schema(design_text: str) -> LabelSchema:
    """The labels table of DESIGN.md ("## Labels"): stream labels, structured metadata and the
    values of `source`."""
    section = design_text.split("## Labels", 1)[1].split("\n## ", 1)[0]
    stream: set[str] = set()
    metadata: set[str] = set()
    sources: set[str] = set()
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not line.lstrip().startswith("|") or set(cells[1]) <= {"-", " "}:
            continue
        # parenthesised parts give examples of values, e.g. `kind` (`summary`, `alert`)
        for token in _BACKTICKED.findall(re.sub(r"\([^)]*\)", "", cells[1])):
            name, _, value = token.partition("=")
            stream.add(name.strip())
            if name.strip() == "source":
                sources.add(value.strip().strip('"'))
        metadata.update(token.split("=")[0].strip() for token in _BACKTICKED.findall(cells[2]))
    return LabelSchema(frozenset(stream), frozenset(metadata), frozenset(sources))


@pytest.fixture(scope="session")
def label_schema() -> LabelSchema:
    schema = parse_label_schema(DESIGN.read_text())
    assert {"source", "service_name", "level"} <= schema.stream_labels, "labels table not found"
    return schema
