"""scripts/setup.sh installs once per pyproject.toml: scripts/run.sh must not reinstall on every call."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _tree(tmp_path: Path) -> Path:
    """A copy of setup.sh and pyproject.toml whose .venv python records every call."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/pip-calls\n')
    python.chmod(0o755)
    return tmp_path


def _setup(tree: Path, *args: str) -> list[str]:
    subprocess.run(["bash", str(tree / "scripts" / "setup.sh"), *args], check=True, timeout=30)
    calls = tree / "pip-calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_second_call_installs_nothing(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    assert any("install -q -e ." in call for call in _setup(tree))
    (tree / "pip-calls").unlink()
    assert _setup(tree) == []


def test_test_install_covers_a_plain_one_but_not_the_reverse(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    assert any("[test]" in call for call in _setup(tree, "test"))
    (tree / "pip-calls").unlink()
    assert _setup(tree) == []
    assert _setup(tree, "test") == []


def test_a_changed_pyproject_installs_again(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    _setup(tree)
    (tree / "pip-calls").unlink()
    with (tree / "pyproject.toml").open("a") as handle:
        handle.write("\n# changed\n")
    digest = hashlib.sha256((tree / "pyproject.toml").read_bytes()).hexdigest()[:16]
    assert any("install" in call for call in _setup(tree))
    assert (tree / ".venv" / f".installed-{digest}").exists()
