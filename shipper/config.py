"""Shipper settings from the environment (names fixed by DESIGN.md), plus an optional YAML file
(SHIPPER_CONFIG_FILE) holding a `sources:` list for anything more than the defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shipper import loki_defaults
from shipper.settings_errors import describe_settings_error, http_url

DEFAULT_LOKI_URL = loki_defaults.LOKI_URL
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
# the reader may run two batches ahead of the push thread: +8 % lines/s over one on this VM's
# Python, +27 % on an optimized build (bench/real_loki_bench.py, issue 16)
DEFAULT_PUSHES_IN_FLIGHT = 2
MAX_PUSHES_IN_FLIGHT = 8  # each holds a batch (BATCH_MAX_BYTES) in memory
# two pushes sent at once, so a Loki across a network is not waited for one round trip at a time:
# +20 % lines/s at a 20 ms round trip, +52 % at 50 ms; on loopback within the noise (README, Performance)
DEFAULT_PUSH_CONCURRENCY = 2
DEFAULT_TIMESTAMP_FIELDS = ("timestamp", "time", "ts", "created_at")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class GcsSourceConfig(BaseModel):
    # a typo (`prefix:` for `prefixes:`) is an error, not a default
    model_config = ConfigDict(extra="forbid")
    type: Literal["gcs"] = "gcs"
    """`gcs`."""
    id: str = "gcs"
    """Names the source's checkpoint and scheduler job; unique across the file."""
    bucket: str
    """The bucket to read."""
    prefixes: list[str] = Field(default_factory=lambda: list(DEFAULT_GCS_PREFIXES))
    """Object prefixes; each becomes a `prefix` label (without its slash)."""
    timestamp_fields: list[str] = Field(default_factory=lambda: list(DEFAULT_TIMESTAMP_FIELDS))
    """JSON fields holding a record's time, first found wins."""
    read_chunk_bytes: int = 1 << 20
    """Bytes read from an object at a time."""


class FirestoreSourceConfig(BaseModel):
    # a typo (`prefix:` for `prefixes:`) is an error, not a default
    model_config = ConfigDict(extra="forbid")
    type: Literal["firestore"] = "firestore"
    """`firestore`."""
    id: str = "firestore"
    """Names the source's checkpoint and scheduler job; unique across the file."""
    project_id: str
    """Google Cloud project of the database."""
    collections: list[str] = Field(default_factory=lambda: list(DEFAULT_FIRESTORE_COLLECTIONS))
    """Collections to ship."""
    timestamp_fields: dict[str, str] = Field(default_factory=dict)
    """Per collection, the field holding a document's time (default: timestamp, created_at, update_time)."""
    page_size: int = Field(default=500, gt=0)
    """Documents read per query page."""
    # re-read this far below each lane's position for documents written late (0: off); see
    # shipper/sources/firestore/__init__.py for what it costs (cursor size, reads) and what it cannot catch
    late_window_seconds: int = Field(default=DEFAULT_FIRESTORE_LATE_WINDOW_SECONDS, ge=0)
    """Documents whose time lies this far behind what was already shipped are still picked up (0: off)."""


class PodsSourceConfig(BaseModel):
    # a typo (`prefix:` for `prefixes:`) is an error, not a default
    model_config = ConfigDict(extra="forbid")
    type: Literal["pods"] = "pods"
    """`pods`."""
    id: str = "pods"
    """Names the source's checkpoint and scheduler job; unique across the file."""
    namespace: str = DEFAULT_KUBERNETES_NAMESPACE
    """Namespace whose pods are shipped."""
    label_selector: str = ""
    """Only pods matching this selector; empty: all."""
    pod_grace_seconds: int = Field(default=3600, ge=0)
    """How long the logs of a pod that is gone are still read, in seconds."""


SourceConfig = Annotated[
    GcsSourceConfig | FirestoreSourceConfig | PodsSourceConfig, Field(discriminator="type")
]


class ShipperSettings(BaseSettings):
    # the docstrings under the fields are the settings' descriptions: scripts/settings_doc.py reads
    # them (pydantic's use_attribute_docstrings would parse this module at every start, ~30 ms)
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    loki_url: str = DEFAULT_LOKI_URL
    """Loki's base URL; pushes go to /loki/api/v1/push."""
    loki_tenant_id: str | None = None
    """Sent as X-Scope-OrgID when Loki runs with auth_enabled (multi-tenant)."""
    loki_username: str | None = None
    """Basic-auth user for Loki (e.g. behind a gateway); pairs with LOKI_PASSWORD."""
    loki_password: SecretStr | None = None
    """Basic-auth password for Loki."""
    loki_bearer_token: SecretStr | None = None
    """Bearer token for Loki instead of basic auth."""
    loki_push_format: Literal["protobuf", "json"] = loki_defaults.PUSH_FORMAT
    """Push body format: protobuf (snappy-compressed, the fastest) or json."""
    loki_timeout_seconds: float = loki_defaults.TIMEOUT_SECONDS
    """Timeout of one push request, in seconds."""

    batch_max_bytes: int = loki_defaults.BATCH_MAX_BYTES
    """Largest push body before encoding, in bytes."""
    batch_max_entries: int = loki_defaults.BATCH_MAX_ENTRIES
    """Most entries in one push."""
    batch_max_wait_seconds: float = 1.0
    """Longest a partly filled batch waits for more records, in seconds."""
    pushes_in_flight: int = Field(default=DEFAULT_PUSHES_IN_FLIGHT, ge=0, le=MAX_PUSHES_IN_FLIGHT)
    """Batches handed to the push thread (pushed and committed in order) while the next is read; 0: none."""
    push_concurrency: int = Field(default=DEFAULT_PUSH_CONCURRENCY, ge=1, le=MAX_PUSHES_IN_FLIGHT)
    """Pushes sent to Loki at once, at most PUSHES_IN_FLIGHT (their checkpoints still commit in order)."""
    retry_min_backoff_seconds: float = loki_defaults.RETRY_MIN_BACKOFF_SECONDS
    """First delay between retries of a failed push (429, 5xx, network), in seconds."""
    retry_max_backoff_seconds: float = loki_defaults.RETRY_MAX_BACKOFF_SECONDS
    """Longest delay between two retries, in seconds (Retry-After is honoured)."""
    retry_max_total_seconds: float = loki_defaults.RETRY_MAX_TOTAL_SECONDS
    """How long one push is retried before the pass gives up (its checkpoint stays), in seconds."""
    max_line_bytes: int = loki_defaults.MAX_LINE_BYTES
    """Lines longer than this are truncated with a marker and counted, in bytes (Loki's max_line_size)."""
    max_age_hours: float = loki_defaults.MAX_AGE_HOURS
    """Entries older than this are skipped and counted, in hours (Loki's reject_old_samples_max_age)."""

    gcs_bucket_name: str | None = None
    """GCS bucket to ship; enables the GCS source."""
    gcs_prefixes: CsvList = Field(default_factory=lambda: list(DEFAULT_GCS_PREFIXES))
    """Comma-separated object prefixes of the GCS source; each becomes a `prefix` label."""
    firestore_project_id: str | None = None
    """Google Cloud project of the Firestore database; enables the Firestore source."""
    firestore_collections: CsvList = Field(default_factory=lambda: list(DEFAULT_FIRESTORE_COLLECTIONS))
    """Comma-separated Firestore collections to ship."""
    kubernetes_enabled: bool = False
    """Ship the pod logs of KUBERNETES_NAMESPACE."""
    kubernetes_namespace: str = DEFAULT_KUBERNETES_NAMESPACE
    """Namespace whose pods are shipped."""
    kubernetes_label_selector: str = ""
    """Only pods matching this label selector (e.g. app=gpt-runner); empty: all."""

    shipper_state_dir: Path = Path(DEFAULT_STATE_DIR)
    """Directory of the per-source checkpoints (a small PVC in Kubernetes)."""
    shipper_state_url: str | None = None  # gs://bucket/prefix: checkpoints in GCS instead of the dir
    """gs://bucket/prefix: checkpoints in GCS instead of SHIPPER_STATE_DIR (for several replicas)."""
    shipper_interval_seconds: int = Field(default=DEFAULT_INTERVAL_SECONDS, gt=0)
    """Seconds between two passes of each source in `shipper run`."""
    shipper_metrics_port: int = DEFAULT_METRICS_PORT
    """Port of `shipper run`'s /metrics."""
    # 127.0.0.1 outside a container; the image sets 0.0.0.0 so Prometheus can scrape the pod
    shipper_metrics_host: str = "127.0.0.1"
    """Address /metrics binds (the image sets 0.0.0.0 so Prometheus can scrape the pod)."""
    shipper_config_file: Path | None = None
    """YAML file with a `sources:` list (several sources of a kind); replaces the source variables."""
    shipper_leader_election: bool = False
    """Compete for a Kubernetes Lease so that only one replica ships."""
    shipper_lease_name: str = "loki-shipper"
    """Name of that Lease (in POD_NAMESPACE)."""
    shipper_lease_duration_seconds: int = Field(default=30, gt=0)
    """Lease duration; the leader renews every third of it, in seconds."""
    log_level: str = "INFO"
    """debug, info, warning (or warn), error or critical."""
    log_to_loki: bool = False
    """Also send the shipper's own logs to Loki as {source="shipper"} (bounded queue, never blocks)."""

    _split = field_validator("gcs_prefixes", "firestore_collections", mode="before")(split_csv)

    _loki_http_url = field_validator("loki_url")(http_url)

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
            environment_sources = {"GCS_BUCKET_NAME": self.gcs_bucket_name,
                                   "FIRESTORE_PROJECT_ID": self.firestore_project_id,
                                   "KUBERNETES_ENABLED": self.kubernetes_enabled}
            competing = [name for name, value in environment_sources.items() if value]
            if competing:
                raise ValueError(
                    f"SHIPPER_CONFIG_FILE lists the sources, so {', '.join(competing)} would be ignored: "
                    "move that source into the file, or unset one of the two"
                )
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
    """The `sources:` list of SHIPPER_CONFIG_FILE; a ValueError saying where it is wrong."""
    import yaml  # only with a sources file: a start-up without one does not load it

    try:
        with path.open("rb") as handle:
            document = yaml.safe_load(handle) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from exc
    try:
        return _SourcesFile.model_validate(document).sources
    except ValidationError as exc:
        raise ValueError(f"{path}: {describe_settings_error(exc, environment=False)}") from exc


@lru_cache(maxsize=1)
def get_settings() -> ShipperSettings:
    return ShipperSettings()
