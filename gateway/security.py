"""API keys: hashing, constant-time verification, scopes, audit events and per-key rate limits.

A key is never stored, logged or echoed: the gateway keeps SHA-256 digests only and identifies a
key in logs by its configured name or a short prefix of its digest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.datastructures import Headers

from gateway.config import GatewaySettings
from gateway.metrics import AUTH
from gateway.services import redis_client
from gateway.services.errors import NotAuthenticated, NotPermitted, QueryError, RateLimited
from gateway.services.logql import parse_policy
from gateway.services.times import now_z

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
MCP_AUDIT_SCOPE = "mcp"  # the audit event of an MCP request before its tool's scope is known
AUTH_SCHEMES = ("bearer", "apikey")  # Authorization: <scheme> <key>, case-insensitive

audit_log = logging.getLogger("gateway.audit")
log = logging.getLogger(__name__)

Outcome = Literal["ok", "missing", "invalid", "expired", "forbidden", "rate_limited"]


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


def presented_key(headers: Headers) -> str | None:
    """The key from `x-api-key` or `Authorization: Bearer|ApiKey <key>`; None when absent."""
    key = headers.get("x-api-key")
    if key:
        return key.strip() or None
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() in AUTH_SCHEMES and credentials.strip():
        return credentials.strip()
    return None


def load_keys_file(path: Path) -> list[ApiKeyEntry]:
    """Parse the YAML keys file: a list of entries, or a mapping with a `keys:` list."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise GatewayConfigError(f"cannot read GATEWAY_API_KEYS_FILE {path}: {exc}") from exc
    raw: Any = document.get("keys") if isinstance(document, dict) else document
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise GatewayConfigError(f"GATEWAY_API_KEYS_FILE {path}: expected a list of keys")
    entries: list[ApiKeyEntry] = []
    for index, item in enumerate(raw):
        try:
            entries.append(ApiKeyEntry.model_validate(item))
        except ValidationError as exc:
            raise GatewayConfigError(
                f"GATEWAY_API_KEYS_FILE {path}: entry {index} is invalid: {exc}"
            ) from exc
    return entries


class KeyStore:
    """The configured keys, as digests. Rereads the keys file when it changes, so a key can be
    added or retired (rotation: old and new valid at once) without a restart; a broken edit keeps
    the previous keys and logs why; a removed (or unreadable) file revokes its keys, as it would
    stop a start."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._env_entry = self._entry_from_env(settings)
        self._path = settings.gateway_api_keys_file
        self._file_stamp: tuple[int, int] | None = None
        self._file_entries: list[ApiKeyEntry] = []
        if self._path is not None:
            self._file_entries = load_keys_file(self._path)
            self._file_stamp = self._stamp()
        if not self.entries():
            raise GatewayConfigError(
                "no API keys configured: set AI_MONITORING_API_KEY or GATEWAY_API_KEYS_FILE "
                "(create one with `gateway keys new --name NAME --scope logs:read`)"
            )

    @staticmethod
    def _entry_from_env(settings: GatewaySettings) -> ApiKeyEntry | None:
        secret = settings.ai_monitoring_api_key
        if secret is None or not secret.get_secret_value().strip():
            return None
        key = secret.get_secret_value().strip()
        weakness = weak_key_reason(key)
        if weakness:
            raise GatewayConfigError(
                f"{ENV_KEY_NAME} is too weak for a full-access key: {weakness}; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return ApiKeyEntry(
            name=ENV_KEY_NAME,
            sha256=hash_key(key),
            scopes=frozenset({ADMIN_SCOPE}),
        )

    def _stamp(self) -> tuple[int, int] | None:
        assert self._path is not None
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _refresh(self) -> None:
        if self._path is None:
            return
        stamp = self._stamp()
        if stamp == self._file_stamp:
            return
        if stamp is None:
            log.error("keys file %s is gone or unreadable: its keys are revoked", self._path)
            self._file_entries = []
        else:
            try:
                self._file_entries = load_keys_file(self._path)
            except GatewayConfigError as exc:
                log.error("keeping the previous keys: %s", exc)
        self._file_stamp = stamp

    def entries(self) -> list[ApiKeyEntry]:
        env = [self._env_entry] if self._env_entry else []
        return env + self._file_entries

    def match(self, key: str) -> ApiKeyEntry | None:
        """The entry whose digest equals the key's, comparing in constant time against every
        entry (no early exit) so timing reveals neither which nor how many keys matched."""
        self._refresh()
        digest = bytes.fromhex(hash_key(key))
        found: ApiKeyEntry | None = None
        for entry in self.entries():
            if hmac.compare_digest(bytes.fromhex(entry.sha256), digest) and found is None:
                found = entry
        return found


def audit(outcome: Outcome, key_ref: str, client: str, method: str, path: str, scope: str) -> None:
    """One JSON audit event per authentication attempt, and the matching metric."""
    AUTH.labels(outcome=outcome).inc()
    event = {
        "event": "auth",
        "kind": "audit",
        "outcome": outcome,
        "key": key_ref,
        "client": client,
        "method": method,
        "path": path,
        "scope": scope,
        "ts": now_z(),
    }
    level = logging.INFO if outcome == "ok" else logging.WARNING
    audit_log.log(level, json.dumps(event, separators=(",", ":")))


class KeyRateLimiter:
    """Per-key sliding-window limit (`limits` notation, e.g. "120/minute"). The sliding window
    counter keeps two counters per key, where a moving window keeps one entry per request (memory
    and time growing with the limit, and the in-memory storage's expiry runs a thread per key)."""

    def __init__(self, limit: str, storage: Storage | None = None) -> None:
        self.item: RateLimitItem = parse(limit)
        self.storage = storage or MemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(self.storage)

    async def check(self, key_id: str) -> None:
        try:
            if await self._limiter.hit(self.item, key_id):
                return
            stats = await self._limiter.get_window_stats(self.item, key_id)
        except Exception as exc:  # a failing Redis must not take the API down: fail open, loudly
            log.warning("rate limit storage failed (%s); request allowed", type(exc).__name__)
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            "rate_limited",
            f"rate limit of {self.item} per key exceeded",
            f"retry after {retry_after} s, or ask for a higher limit",
            retry_after_seconds=retry_after,
        )


async def build_rate_limiter(settings: GatewaySettings) -> KeyRateLimiter:
    """Redis-backed when REDIS_URL is set, answering yet or not (see redis_client); in memory
    otherwise."""
    if not settings.redis_url:
        return KeyRateLimiter(settings.rate_limit)
    storage = RedisStorage(
        "async+" + settings.redis_url, implementation="redispy", **redis_client.auth_options(settings)
    )
    try:
        answered = await storage.check()
    except Exception as exc:
        redis_client.warn_unanswered("rate limits", exc)
    else:
        if not answered:
            redis_client.warn_unanswered("rate limits", ConnectionError("no answer to a ping"))
    return KeyRateLimiter(settings.rate_limit, storage)


@dataclass(frozen=True)
class Authenticator:
    keys: KeyStore
    limiter: KeyRateLimiter

    async def authenticate(
        self, headers: Headers, scope: str, client: str, method: str, path: str
    ) -> Principal:
        """The caller of a REST request: key, expiry, `scope`, rate limit; one audit event."""
        entry = self._entry(headers, scope, client, method, path)
        principal = entry.principal()
        self._check_scope(principal, scope, client, method, path)
        await self._limit(principal, scope, client, method, path)
        audit("ok", entry.name, client, method, path, scope)
        return principal

    async def identify(self, headers: Headers, client: str, method: str, path: str) -> Principal:
        """The caller of a request whose scope is decided later (an MCP message): key, expiry and
        rate limit, audited with the scope "mcp"; `authorize` then checks and audits each tool's."""
        entry = self._entry(headers, MCP_AUDIT_SCOPE, client, method, path)
        principal = entry.principal()
        await self._limit(principal, MCP_AUDIT_SCOPE, client, method, path)
        audit("ok", entry.name, client, method, path, MCP_AUDIT_SCOPE)
        return principal

    def authorize(self, principal: Principal, scope: str, client: str, method: str, path: str) -> None:
        """403 (audited) unless `principal` has `scope`; an audited "ok" otherwise."""
        self._check_scope(principal, scope, client, method, path)
        audit("ok", principal.name, client, method, path, scope)

    def _entry(self, headers: Headers, scope: str, client: str, method: str, path: str) -> ApiKeyEntry:
        key = presented_key(headers)
        if key is None:
            audit("missing", "-", client, method, path, scope)
            raise NotAuthenticated(
                "missing_api_key",
                "an API key is required",
                "send it as `x-api-key: <key>` or `Authorization: Bearer <key>`",
            )
        entry = self.keys.match(key)
        if entry is None:
            audit("invalid", fingerprint(key), client, method, path, scope)
            raise NotAuthenticated(
                "invalid_api_key",
                "the API key is not valid",
                "check the key; keys are shown only once when created",
            )
        if entry.expired(datetime.now(UTC)):
            audit("expired", entry.name, client, method, path, scope)
            raise NotAuthenticated(
                "expired_api_key",
                f"the API key {entry.name!r} has expired",
                "ask for a new key (`gateway keys new`)",
            )
        return entry

    @staticmethod
    def _check_scope(principal: Principal, scope: str, client: str, method: str, path: str) -> None:
        if not principal.allows(scope):
            audit("forbidden", principal.name, client, method, path, scope)
            raise NotPermitted(
                "insufficient_scope",
                f"the API key {principal.name!r} lacks the scope {scope!r}",
                f"use a key with the {scope!r} or 'admin' scope",
            )

    async def _limit(self, principal: Principal, scope: str, client: str, method: str, path: str) -> None:
        try:
            await self.limiter.check(principal.key_id)
        except RateLimited:
            audit("rate_limited", principal.name, client, method, path, scope)
            raise
