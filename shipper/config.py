"""Shipper settings from the environment (names fixed by DESIGN.md), plus an optional YAML file
(SHIPPER_CONFIG_FILE) holding a `sources:` list for anything more than the defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_LOKI_URL = "http://127.0.0.1:3100"
DEFAULT_GCS_PREFIXES = ("trades/", "reflections/", "strategies/")
DEFAULT_FIRESTORE_COLLECTIONS = ("gpt_runner_trades", "gpt_runner_reflections")
# A batch job, a retry or a reflection written after its trade lands minutes to half an hour
# after its `timestamp`: an hour covers them, and is as far behind as Loki takes an entry into a
# stream that already holds newer ones (max_chunk_age / 2). Cost: one digest per document of the
# last hour per lane in the checkpoint, and re-reading those documents each pass.
DEFAULT_FIRESTORE_LATE_WINDOW_SECONDS = 3600
DEFAULT_KUBERNETES_NAMESPACE = "gpt"
DEFAULT_STATE_DIR = "./state"
DEFAULT_INTERVAL_SECONDS = 60
DEFAULT_METRICS_PORT = 9102
DEFAULT_TIMESTAMP_FIELDS = ("timestamp", "time", "ts", "created_at")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class GcsSourceConfig(BaseModel):
    type: Literal["gcs"] = "gcs"
    id: str = "gcs"
    bucket: str
    prefixes: list[str] = Field(default_factory=lambda: list(DEFAULT_GCS_PREFIXES))
    timestamp_fields: list[str] = Field(default_factory=lambda: list(DEFAULT_TIMESTAMP_FIELDS))
    read_chunk_bytes: int = 1 << 20


class FirestoreSourceConfig(BaseModel):
    type: Literal["firestore"] = "firestore"
    id: str = "firestore"
    project_id: str
    collections: list[str] = Field(default_factory=lambda: list(DEFAULT_FIRESTORE_COLLECTIONS))
    # per collection: the field holding the record's time; default: timestamp, created_at, update_time
    timestamp_fields: dict[str, str] = Field(default_factory=dict)
    page_size: int = Field(default=500, gt=0)
    # re-read this far below each lane's position for documents written late (0: off); see
    # shipper/sources/firestore.py for what it costs (cursor size, reads) and what it cannot catch
    late_window_seconds: int = Field(default=DEFAULT_FIRESTORE_LATE_WINDOW_SECONDS, ge=0)


class PodsSourceConfig(BaseModel):
    type: Literal["pods"] = "pods"
    id: str = "pods"
    namespace: str = DEFAULT_KUBERNETES_NAMESPACE
    label_selector: str = ""
    pod_grace_seconds: int = Field(default=3600, ge=0)


SourceConfig = Annotated[
    GcsSourceConfig | FirestoreSourceConfig | PodsSourceConfig, Field(discriminator="type")
]


class ShipperSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    loki_url: str = DEFAULT_LOKI_URL
    loki_tenant_id: str | None = None
    loki_username: str | None = None
    loki_password: SecretStr | None = None
    loki_bearer_token: SecretStr | None = None
    loki_push_format: Literal["protobuf", "json"] = "protobuf"
    loki_timeout_seconds: float = 30.0

    batch_max_bytes: int = 1 << 20
    batch_max_entries: int = 10_000
    batch_max_wait_seconds: float = 1.0
    retry_min_backoff_seconds: float = 0.5
    retry_max_backoff_seconds: float = 30.0
    retry_max_total_seconds: float = 300.0
    max_line_bytes: int = 256 * 1024
    max_age_hours: float = 168.0  # Loki's default reject_old_samples_max_age

    gcs_bucket_name: str | None = None
    gcs_prefixes: CsvList = Field(default_factory=lambda: list(DEFAULT_GCS_PREFIXES))
    firestore_project_id: str | None = None
    firestore_collections: CsvList = Field(default_factory=lambda: list(DEFAULT_FIRESTORE_COLLECTIONS))
    kubernetes_enabled: bool = False
    kubernetes_namespace: str = DEFAULT_KUBERNETES_NAMESPACE
    kubernetes_label_selector: str = ""

    shipper_state_dir: Path = Path(DEFAULT_STATE_DIR)
    shipper_state_url: str | None = None  # gs://bucket/prefix: checkpoints in GCS instead of the dir
    shipper_interval_seconds: int = Field(default=DEFAULT_INTERVAL_SECONDS, gt=0)
    shipper_metrics_port: int = DEFAULT_METRICS_PORT
    # 127.0.0.1 outside a container; the image sets 0.0.0.0 so Prometheus can scrape the pod
    shipper_metrics_host: str = "127.0.0.1"
    shipper_config_file: Path | None = None
    shipper_leader_election: bool = False
    shipper_lease_name: str = "loki-shipper"
    shipper_lease_duration_seconds: int = Field(default=30, gt=0)
    log_level: str = "INFO"

    _split = field_validator("gcs_prefixes", "firestore_collections", mode="before")(split_csv)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        """Same rule as the gateway's (they share LOG_LEVEL): any case, WARN means WARNING."""
        normalised = level.strip().upper()
        normalised = "WARNING" if normalised == "WARN" else normalised
        if normalised not in LOG_LEVELS:
            raise ValueError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        return normalised

    def sources(self) -> list[SourceConfig]:
        """Sources from SHIPPER_CONFIG_FILE when given, else the ones the environment enables."""
        if self.shipper_config_file is not None:
            return load_sources_file(self.shipper_config_file)
        found: list[SourceConfig] = []
        if self.gcs_bucket_name:
            found.append(GcsSourceConfig(bucket=self.gcs_bucket_name, prefixes=self.gcs_prefixes))
        if self.firestore_project_id:
            found.append(
                FirestoreSourceConfig(
                    project_id=self.firestore_project_id, collections=self.firestore_collections
                )
            )
        if self.kubernetes_enabled:
            found.append(
                PodsSourceConfig(
                    namespace=self.kubernetes_namespace, label_selector=self.kubernetes_label_selector
                )
            )
        return found


class _SourcesFile(BaseModel):
    sources: list[SourceConfig]

    @model_validator(mode="after")
    def _unique_ids(self) -> _SourcesFile:
        """The id names the checkpoint and the scheduler job: two sources sharing one would
        overwrite each other's position (and one job would replace the other)."""
        ids = [source.id for source in self.sources]
        repeated = sorted({source_id for source_id in ids if ids.count(source_id) > 1})
        if repeated:
            raise ValueError(f"source ids must be unique; repeated: {', '.join(repeated)} (set `id:`)")
        return self


def load_sources_file(path: Path) -> list[SourceConfig]:
    with path.open("rb") as handle:
        document = yaml.safe_load(handle) or {}
    return _SourcesFile.model_validate(document).sources


@lru_cache(maxsize=1)
def get_settings() -> ShipperSettings:
    return ShipperSettings()
