"""LokiSinkConfig: where Loki is and how to sign in, the batch limits, the retry budget and the
limits applied before sending; checked when made."""

from __future__ import annotations

from dataclasses import dataclass, field

from shipper import loki_defaults
from shipper.config import ShipperSettings
from shipper.sinks.loki.encode import PushFormat


@dataclass(frozen=True, slots=True)
class LokiSinkConfig:
    url: str = loki_defaults.LOKI_URL
    tenant_id: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    push_format: PushFormat = loki_defaults.PUSH_FORMAT
    timeout_seconds: float = loki_defaults.TIMEOUT_SECONDS
    batch_max_bytes: int = loki_defaults.BATCH_MAX_BYTES
    batch_max_entries: int = loki_defaults.BATCH_MAX_ENTRIES
    retry_min_backoff_seconds: float = loki_defaults.RETRY_MIN_BACKOFF_SECONDS
    retry_max_backoff_seconds: float = loki_defaults.RETRY_MAX_BACKOFF_SECONDS
    retry_max_total_seconds: float = loki_defaults.RETRY_MAX_TOTAL_SECONDS
    max_line_bytes: int = loki_defaults.MAX_LINE_BYTES
    max_age_hours: float | None = loki_defaults.MAX_AGE_HOURS

    def __post_init__(self) -> None:
        if self.bearer_token and (self.username or self.password):
            raise ValueError("Loki auth: set either a username/password or a bearer token, not both")
        if self.password and not self.username:
            raise ValueError("Loki auth: a password needs a username (LOKI_USERNAME)")
        if self.batch_max_bytes <= 0 or self.batch_max_entries <= 0:
            raise ValueError("batch_max_bytes and batch_max_entries must be positive")
        if self.max_line_bytes < 1024:
            raise ValueError("max_line_bytes must be at least 1024")
        if not 0 < self.retry_min_backoff_seconds <= self.retry_max_backoff_seconds:
            raise ValueError("retry backoff: need 0 < retry_min_backoff_seconds <= retry_max_backoff_seconds")
        if self.retry_max_total_seconds < 0:
            raise ValueError("retry_max_total_seconds must not be negative")

    @classmethod
    def from_settings(cls, settings: ShipperSettings) -> LokiSinkConfig:
        return cls(
            url=settings.loki_url,
            tenant_id=settings.loki_tenant_id or None,
            username=settings.loki_username or None,
            password=settings.loki_password.get_secret_value() if settings.loki_password else None,
            bearer_token=(
                settings.loki_bearer_token.get_secret_value() if settings.loki_bearer_token else None
            ),
            push_format=settings.loki_push_format,
            timeout_seconds=settings.loki_timeout_seconds,
            batch_max_bytes=settings.batch_max_bytes,
            batch_max_entries=settings.batch_max_entries,
            retry_min_backoff_seconds=settings.retry_min_backoff_seconds,
            retry_max_backoff_seconds=settings.retry_max_backoff_seconds,
            retry_max_total_seconds=settings.retry_max_total_seconds,
            max_line_bytes=settings.max_line_bytes,
            max_age_hours=settings.max_age_hours if settings.max_age_hours > 0 else None,
        )
