"""The command's start-up: imports with the collector paused, frozen only in the command's own
process, and the interpreter lock's switch interval."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shipper import startup
from shipper.config import GcsSourceConfig, ShipperSettings
from shipper.sources.factory import build_source

REPO = Path(__file__).resolve().parents[2]


def test_importing_pauses_the_collector_and_gives_it_back() -> None:
    assert gc.isenabled()
    frozen_before = gc.get_freeze_count()
    with startup.importing():
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen_before, "a process that did not start as the command is not frozen"


def test_importing_leaves_a_collector_paused_by_its_caller_paused() -> None:
    gc.disable()
    try:
        with startup.importing():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_building_a_source_in_process_freezes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    frozen_before = gc.get_freeze_count()
    source = build_source(GcsSourceConfig(id="gcs", bucket="b", prefixes=["trades/"]), ShipperSettings())
    assert source.id == "gcs"
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen_before


def test_the_command_freezes_what_its_start_up_imported() -> None:
    """`run` (the `shipper` script and `python -m shipper`): the CLI's modules are frozen when its
    main starts, a source's client library once the source is built, the collector is on, and
    the interpreter lock changes hands within 1 ms (5 ms is CPython's default, kept in-process)."""
    probe = textwrap.dedent("""
        import gc, json, sys
        import shipper.cli
        from shipper import startup
        from shipper.config import GcsSourceConfig, ShipperSettings
        from shipper.sources.factory import build_source

        def main():
            at_main = gc.get_freeze_count()
            build_source(GcsSourceConfig(id="gcs", bucket="b", prefixes=["trades/"]), ShipperSettings())
            print(json.dumps({"at_main": at_main, "after_source": gc.get_freeze_count(),
                              "enabled": gc.isenabled(), "google": "google.cloud.storage" in sys.modules,
                              "switch_interval": sys.getswitchinterval()}))
            return 0

        shipper.cli.main = main
        raise SystemExit(startup.run())
    """)
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO,
                          env={"STORAGE_EMULATOR_HOST": "http://127.0.0.1:9", "PATH": ""},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["at_main"] > 10_000  # pydantic, httpx, prometheus-client...
    assert seen["google"] and seen["after_source"] > seen["at_main"] + 10_000
    assert seen["enabled"]
    assert seen["switch_interval"] == pytest.approx(startup.LOCK_SWITCH_INTERVAL_S)
    assert sys.getswitchinterval() == pytest.approx(0.005), "a test process keeps CPython's default"
