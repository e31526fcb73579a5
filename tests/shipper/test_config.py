from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shipper.config import FirestoreSourceConfig, GcsSourceConfig, ShipperSettings


def test_defaults_follow_design(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCS_BUCKET_NAME", "logs-bucket")
    settings = ShipperSettings()
    assert settings.gcs_prefixes == ["trades/", "reflections/", "strategies/"]
    assert settings.firestore_collections == ["gpt_runner_trades", "gpt_runner_reflections"]
    assert settings.kubernetes_namespace == "gpt"
    assert [s.type for s in settings.sources()] == ["gcs"]


def test_comma_separated_env_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCS_BUCKET_NAME", "b")
    monkeypatch.setenv("GCS_PREFIXES", "trades/, strategies/ ,")
    monkeypatch.setenv("FIRESTORE_PROJECT_ID", "p")
    monkeypatch.setenv("FIRESTORE_COLLECTIONS", "a,b")
    sources = ShipperSettings().sources()
    assert isinstance(sources[0], GcsSourceConfig) and sources[0].prefixes == ["trades/", "strategies/"]
    assert isinstance(sources[1], FirestoreSourceConfig) and sources[1].collections == ["a", "b"]


def test_sources_file_selects_model_by_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - {type: gcs, id: gcs-main, bucket: b1}\n"
        "  - {type: pods, namespace: trading}\n"
    )
    monkeypatch.setenv("SHIPPER_CONFIG_FILE", str(path))
    sources = ShipperSettings().sources()
    assert [(s.type, s.id) for s in sources] == [("gcs", "gcs-main"), ("pods", "pods")]


def test_unknown_source_type_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  - {type: s3, bucket: b}\n")
    monkeypatch.setenv("SHIPPER_CONFIG_FILE", str(path))
    with pytest.raises(ValueError, match="s3"):
        ShipperSettings().sources()


def test_sources_file_rejects_repeated_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # both default to id "gcs": they would share one checkpoint and one scheduler job
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  - {type: gcs, bucket: b1}\n  - {type: gcs, bucket: b2}\n")
    monkeypatch.setenv("SHIPPER_CONFIG_FILE", str(path))
    with pytest.raises(ValueError, match="repeated: gcs"):
        ShipperSettings().sources()


@pytest.mark.parametrize(("name", "value"), [
    ("SHIPPER_INTERVAL_SECONDS", "0"), ("SHIPPER_LEASE_DURATION_SECONDS", "0"), ("LOG_LEVEL", "verbose"),
])
def test_unusable_settings_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        ShipperSettings()


def test_log_level_is_normalised_like_the_gateways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", " warn ")
    assert ShipperSettings().log_level == "WARNING"


@pytest.mark.parametrize("page_size", [0, -1])
def test_firestore_page_size_must_be_positive(page_size: int) -> None:
    # limit(0) would read nothing, forever, without a word
    with pytest.raises(ValidationError, match="page_size"):
        FirestoreSourceConfig(project_id="p", page_size=page_size)
