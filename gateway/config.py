"""Gateway settings from the environment (names fixed by DESIGN.md). Secrets have no defaults;
the gateway refuses to start without at least one API key."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001
DEFAULT_LOKI_URL = "http://127.0.0.1:3100"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_PROXY_MAX_RESPONSE_BYTES = 5 * 1024 * 1024
MIB = 1024 * 1024


class UpstreamService(BaseModel):
    """A service whose health the gateway probes and whose monitoring paths it may proxy."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    base_url: str
    health_path: str = "/health"
    monitoring_prefix: str | None = None  # e.g. /api/monitoring; None: not proxied
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # the service's own credentials
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, base_url: str) -> str:
        parsed = urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("base_url must be an absolute http(s) URL such as http://api:8080")
        if parsed.query or parsed.fragment or parsed.username or parsed.password:
            raise ValueError("base_url must not carry a query, fragment or credentials; use headers")
        return base_url

    @field_validator("health_path", "monitoring_prefix")
    @classmethod
    def _relative_path(cls, path: str | None) -> str | None:
        if path is not None and (not path.startswith("/") or "//" in path or ".." in path):
            raise ValueError("paths must start with / and contain neither // nor ..")
        return path


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # auth
    ai_monitoring_api_key: SecretStr | None = None
    gateway_api_keys_file: Path | None = None
    gateway_metrics_require_key: bool = False
    rate_limit: str = "120/minute"  # `limits` notation, per key
    redis_url: str | None = None
    # AUTH for REDIS_URL, kept out of the URL so that the URL can live in plain configuration
    redis_password: SecretStr | None = None

    # Loki
    loki_url: str = DEFAULT_LOKI_URL
    loki_tenant_id: str | None = None
    loki_timeout_seconds: float = 15.0
    # Loki calls in flight at once (the pool has a few connections more, for the health probes);
    # a call waits at most LOKI_QUEUE_TIMEOUT_SECONDS for a slot, then answers 503 + Retry-After
    loki_max_concurrent_requests: int = Field(default=50, ge=1, le=1000)
    loki_queue_timeout_seconds: float = Field(default=5.0, gt=0)
    query_max_range_hours: float = 24.0
    query_max_limit: int = 5000
    query_default_limit: int = 100
    logs_max_limit: int = 1000
    query_max_bytes: int | None = None  # checked against index/stats when set
    cache_ttl_seconds: float = 10.0
    cache_max_bytes: int = Field(default=64 * MIB, ge=0)  # the answer cache's JSON bytes; 0: none
    redact_log_lines: bool = True

    # monitored services and the ops stack (optional)
    gateway_services_file: Path | None = None
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    probe_timeout_seconds: float = 3.0
    proxy_max_response_bytes: int = DEFAULT_PROXY_MAX_RESPONSE_BYTES
    overview_cache_ttl_seconds: float = 10.0

    # summaries
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = DEFAULT_OPENAI_MODEL
    openai_timeout_seconds: float = 30.0
    summary_max_lines: int = 100_000
    summary_prompt_max_bytes: int = 24_000
    summary_cache_ttl_seconds: float = 300.0
    summary_digest_interval_minutes: int = 0  # 0: no scheduled digests

    # alerts
    alerts_max_stored: int = 1000
    alerts_max_bytes: int = Field(default=64 * MIB, ge=4096)  # all stored alerts, as JSON
    # one stored alert: longer label/annotation values are cut with a marker, extra keys dropped
    alerts_entry_max_bytes: int = Field(default=64 * 1024, ge=4096)
    alerts_webhook_max_bytes: int = Field(default=4 * MIB, ge=1024)  # one notification's body
    alert_slack_webhook_url: SecretStr | None = None
    alert_forward_webhook_url: SecretStr | None = None

    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        """DEBUG/INFO/WARNING/ERROR/CRITICAL, any case; WARN is taken for WARNING (uvicorn refuses it)."""
        normalised = level.strip().upper()
        normalised = "WARNING" if normalised == "WARN" else normalised
        if normalised not in LOG_LEVELS:
            raise ValueError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        return normalised


@lru_cache(maxsize=1)
def get_settings() -> GatewaySettings:
    return GatewaySettings()
