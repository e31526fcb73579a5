"""docs/settings.md is generated from the settings classes and must not go stale."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from gateway.config import GatewaySettings
from shipper.config import FirestoreSourceConfig, GcsSourceConfig, PodsSourceConfig, ShipperSettings

REPO = Path(__file__).resolve().parents[1]


def _settings_doc_descriptions(model: type[BaseModel]) -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("settings_doc", REPO / "scripts" / "settings_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.descriptions(model)  # type: ignore[no-any-return]


def test_settings_reference_is_current() -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "settings_doc.py"), "--check"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("model", [ShipperSettings, GatewaySettings, GcsSourceConfig, FirestoreSourceConfig,
                                   PodsSourceConfig])
def test_every_setting_is_described(model: type[BaseModel]) -> None:
    described = _settings_doc_descriptions(model)
    undescribed = [name for name in model.model_fields if not described.get(name)]
    assert not undescribed, f"{model.__name__}: describe {undescribed} (a docstring under the field)"


def test_readme_links_the_reference_and_shows_a_sources_file() -> None:
    readme = (REPO / "README.md").read_text()
    assert "docs/settings.md" in readme
    assert "sources:" in readme and "type: gcs" in readme
