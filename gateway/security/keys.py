"""API keys and who holds them: scopes, the Principal a key stands for, one entry of the keys
file, hashing, fingerprints, strength and new keys.

A key is never stored, logged or echoed: the gateway keeps SHA-256 digests only and identifies a
key in logs by its configured name or a short prefix of its digest."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.services.errors import QueryError
from gateway.services.logql import parse_policy

ADMIN_SCOPE = "admin"  # implies every other scope
KNOWN_SCOPES = frozenset(
    {
        "logs:read",
        "logs:transform",  # LogQL stages that rewrite lines or labels (see services/logql/guardrails.py)
        "summary",
        "proxy",
        "monitoring:read",
        "alerts:write",
        "alerts:read",
        "metrics",
        ADMIN_SCOPE,
    }
)
ENV_KEY_NAME = "AI_MONITORING_API_KEY"
MIN_STRONG_KEY_CHARS = 24
MIN_DISTINCT_KEY_CHARS = 12
KEY_PREFIX = "gwk_"  # makes leaked keys easy to spot for secret scanners
KEY_RANDOM_BYTES = 32
FINGERPRINT_HEX_CHARS = 8


class GatewayConfigError(RuntimeError):
    """The gateway cannot start with this configuration (no keys, unreadable keys file ...)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name, its scopes, Loki tenant and label policy (a selector such
    as `{source="gcs"}` whose matchers are injected into every query), or None for no policy."""

    name: str
    scopes: frozenset[str]
    tenant: str | None = None
    label_policy: str | None = None
    key_id: str = ""  # short digest prefix; identifies the key in rate limits and audit events

    def allows(self, scope: str) -> bool:
        return ADMIN_SCOPE in self.scopes or scope in self.scopes


class ApiKeyEntry(BaseModel):
    """One line of GATEWAY_API_KEYS_FILE."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: frozenset[str] = Field(min_length=1)
    tenant: str | None = None
    label_policy: str | None = None
    expires_at: datetime | None = None

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: frozenset[str]) -> frozenset[str]:
        unknown = scopes - KNOWN_SCOPES
        if unknown:
            raise ValueError(f"unknown scopes {sorted(unknown)}; known: {sorted(KNOWN_SCOPES)}")
        return scopes

    @field_validator("label_policy")
    @classmethod
    def _selector_shape(cls, policy: str | None) -> str | None:
        if policy is not None and not re.fullmatch(r"\{.+\}", policy.strip(), flags=re.DOTALL):
            raise ValueError('label_policy must be a stream selector such as {source="gcs"}')
        if policy:  # parsed as every query will parse it, so a broken policy fails at load time
            try:
                parse_policy(policy.strip())
            except QueryError as exc:
                raise ValueError(f"label_policy is not a valid stream selector: {exc.message}") from exc
        return policy.strip() if policy else None

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, expires_at: datetime | None) -> datetime | None:
        if expires_at is not None and expires_at.tzinfo is None:
            return expires_at.replace(tzinfo=UTC)
        return expires_at

    def principal(self) -> Principal:
        return Principal(
            name=self.name,
            scopes=self.scopes,
            tenant=self.tenant,
            label_policy=self.label_policy,
            key_id=self.sha256[:FINGERPRINT_HEX_CHARS],
        )

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def fingerprint(key: str) -> str:
    """Short, non-reversible reference to a presented key, safe for logs."""
    return "sha256:" + hash_key(key)[:FINGERPRINT_HEX_CHARS]


def weak_key_reason(key: str) -> str | None:
    """Why `key` is too guessable for full access (never quoting it), or None. A key needs
    MIN_STRONG_KEY_CHARS characters, MIN_DISTINCT_KEY_CHARS different ones and no repeated unit,
    which rules out `abc`, `changeme-changeme-changeme` and the like while any random token passes."""
    if len(key) < MIN_STRONG_KEY_CHARS:
        return f"it has {len(key)} characters, at least {MIN_STRONG_KEY_CHARS} are needed"
    distinct = len(set(key))
    if distinct < MIN_DISTINCT_KEY_CHARS:
        return f"it uses only {distinct} different characters, at least {MIN_DISTINCT_KEY_CHARS} are needed"
    if any(key == (key[:n] * (len(key) // n + 1))[: len(key)] for n in range(1, len(key) // 2 + 1)):
        return "it repeats a shorter text"
    return None


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)

