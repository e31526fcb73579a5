"""Gateway settings from the environment (names fixed by DESIGN.md). Secrets have no defaults;
the gateway refuses to start without at least one API key."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from limits import parse
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shipper.settings_errors import http_url

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001
DEFAULT_LOKI_URL = "http://127.0.0.1:3100"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_PROXY_MAX_RESPONSE_BYTES = 5 * 1024 * 1024
MIB = 1024 * 1024
DEFAULT_MCP_ALLOWED_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost")
DEFAULT_ANSWER_MAX_BYTES = 64 * 1024  # about 16k tokens: room for an agent's other context
DEFAULT_ANSWER_MAX_BYTES_LIMIT = 4 * 1024 * 1024
DEFAULT_ANSWER_MAX_LINE_BYTES = 4096
MIN_ANSWER_BYTES = 1024
MIN_LINE_BYTES = 64


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
    # the docstrings under the fields are the settings' descriptions: scripts/settings_doc.py reads
    # them (pydantic's use_attribute_docstrings would parse this module at every start, ~30 ms)
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # auth
    ai_monitoring_api_key: SecretStr | None = None
    """One full-access API key (at least 24 characters, random); or use GATEWAY_API_KEYS_FILE."""
    gateway_api_keys_file: Path | None = None
    """YAML file of hashed keys with names, scopes, tenant, label policy and expiry (`gateway keys new`)."""
    gateway_metrics_require_key: bool = False
    """Require a key with the `metrics` scope for /metrics."""
    rate_limit: str = "120/minute"  # `limits` notation, per key
    """Requests allowed per key, in `limits` notation (e.g. 120/minute)."""
    redis_url: str | None = None
    """Redis shared by the replicas for rate limits, the query cache, alerts and digest claims."""
    # AUTH for REDIS_URL, kept out of the URL so that the URL can live in plain configuration
    redis_password: SecretStr | None = None
    """Redis AUTH password, kept out of REDIS_URL."""

    # Loki
    loki_url: str = DEFAULT_LOKI_URL
    """Loki's base URL for queries."""
    loki_tenant_id: str | None = None
    """Default X-Scope-OrgID of queries (a key's own tenant wins)."""
    loki_timeout_seconds: float = 15.0
    """Timeout of one Loki query, in seconds."""
    loki_max_concurrent_requests: int = Field(default=50, ge=1, le=1000)
    """Loki calls in flight at once (the pool has a few connections more, for the health probes)."""
    loki_queue_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long a call waits for one of those slots before it answers 503 with Retry-After, in seconds."""
    query_max_range_hours: float = 24.0
    """Longest time range a query may cover, in hours."""
    query_max_limit: int = 5000
    """Largest `limit` of the LogQL proxy routes."""
    query_default_limit: int = 100
    """`limit` when a request gives none."""
    logs_max_limit: int = 1000
    """Largest `limit` of the per-source /logs routes."""
    query_max_bytes: int | None = None  # checked against index/stats when set
    """Refuse queries whose index/stats estimate exceeds this many bytes; unset: no check."""
    cache_ttl_seconds: float = 10.0
    """How long identical query answers are served from the cache, in seconds."""
    cache_max_bytes: int = Field(default=64 * MIB, ge=0)
    """Size of the answer cache as JSON, in bytes (0: no cache); expired answers are dropped at once."""
    redact_log_lines: bool = True
    """Mask secrets (passwords, tokens, keys) in returned lines, labels and summaries."""

    # monitored services and the ops stack (optional)
    gateway_services_file: Path | None = None
    """YAML file of the services whose health is probed and whose monitoring paths are proxied."""
    prometheus_url: str | None = None
    """Prometheus base URL, probed by the overview."""
    alertmanager_url: str | None = None
    """Alertmanager base URL, probed by the overview."""
    probe_timeout_seconds: float = 3.0
    """Timeout of one health probe, in seconds."""
    proxy_max_response_bytes: int = DEFAULT_PROXY_MAX_RESPONSE_BYTES
    """Largest upstream answer the monitoring proxy passes on, in bytes."""
    overview_cache_ttl_seconds: float = 10.0
    """How long the overview is cached, in seconds."""

    # summaries
    openai_api_key: SecretStr | None = None
    """OpenAI key for summaries; without it summaries are built offline ("model": null)."""
    openai_base_url: str | None = None
    """OpenAI-compatible endpoint instead of api.openai.com."""
    openai_model: str = DEFAULT_OPENAI_MODEL
    """Model of the summaries."""
    openai_timeout_seconds: float = 30.0
    """Timeout of one model call, in seconds."""
    summary_max_lines: int = 100_000
    """Most log lines one summary reads."""
    summary_prompt_max_bytes: int = 24_000
    """Largest prompt sent to the model, in bytes."""
    summary_cache_ttl_seconds: float = 300.0
    """How long a summary is served from the cache, in seconds."""
    summary_digest_interval_minutes: int = 0  # 0: no scheduled digests
    """Write a digest per source into Loki every N minutes; 0: never."""

    # alerts
    alerts_max_stored: int = 1000
    """Most alerts kept in the alert store."""
    alerts_max_bytes: int = Field(default=64 * MIB, ge=4096)
    """Size of all stored alerts as JSON, in bytes; the oldest go first."""
    alerts_entry_max_bytes: int = Field(default=64 * 1024, ge=4096)
    """Size of one stored alert, in bytes: longer values are cut with a marker, extra keys dropped."""
    alerts_webhook_max_bytes: int = Field(default=4 * MIB, ge=1024)
    """Largest Alertmanager notification body accepted (413 beyond), in bytes."""
    alert_slack_webhook_url: SecretStr | None = None
    """Slack incoming-webhook URL that receives alert notifications."""
    alert_forward_webhook_url: SecretStr | None = None
    """Webhook URL that receives each alert notification as JSON."""

    log_level: str = "INFO"
    """debug, info, warning (or warn), error or critical."""
    log_to_loki: bool = False
    """Also send the gateway's own logs to Loki as {source="gateway"} (bounded queue, never blocks)."""

    # agents: the MCP endpoint and answers sized for a context window
    mcp_enabled: bool = True
    """Serve the MCP endpoint at /mcp (streamable HTTP, stateless: any replica answers any request)."""
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_MCP_ALLOWED_HOSTS)
    )
    """Host header values /mcp accepts (DNS rebinding), comma-separated; `name:*`: any port, `*`: any host."""
    answer_max_bytes: int = Field(default=DEFAULT_ANSWER_MAX_BYTES, ge=MIN_ANSWER_BYTES)
    """Byte budget of a log answer when the request sets no `max_bytes`; the page ends where it is spent."""
    answer_max_bytes_limit: int = Field(default=DEFAULT_ANSWER_MAX_BYTES_LIMIT, ge=MIN_ANSWER_BYTES)
    """Largest `max_bytes` a request may ask for."""
    answer_budget_on_rest: bool = True
    """REST log answers without `max_bytes` get the ANSWER_MAX_BYTES budget too (MCP always has one);
    false: a REST page ends at `limit` only and lines are not clipped."""
    answer_max_line_bytes: int = Field(default=DEFAULT_ANSWER_MAX_LINE_BYTES, ge=MIN_LINE_BYTES)
    """Under the default budget, longer log lines are clipped to this many bytes, with a marker saying
    how much was cut (a request's own `max_bytes` clips lines at a quarter of it instead)."""
    grafana_url: str | None = None
    """Grafana base URL; log answers then carry a link opening the same query in Explore."""
    grafana_loki_datasource_uid: str = "loki"
    """UID of the Loki datasource in Grafana, used by the Explore links."""
    tail_max_seconds: float = Field(default=300.0, gt=0)
    """Longest live follow (GET /api/monitoring/logs/tail, MCP tail_logs), in seconds."""
    tail_max_lines: int = Field(default=5000, ge=1)
    """Most lines one live follow returns."""
    tail_max_per_key: int = Field(default=2, ge=1)
    """Live follows one key may have open at once (per replica)."""
    tail_poll_seconds: float = Field(default=1.0, gt=0)
    """How often a live follow asks Loki for new lines, in seconds."""

    @field_validator("mcp_allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, hosts: object) -> object:
        if isinstance(hosts, str):
            return [host.strip() for host in hosts.split(",") if host.strip()]
        return hosts

    _loki_http_url = field_validator("loki_url")(http_url)

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_notation(cls, limit: str) -> str:
        try:
            parse(limit)
        except ValueError as exc:
            raise ValueError("must be in `limits` notation, such as 120/minute or 10/second") from exc
        return limit

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
