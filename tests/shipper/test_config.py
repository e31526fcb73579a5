from __future__ import annotations

from pathlib import Path

import pytest

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
