"""API keys: `keys` (scopes, Principal, hashing), `key_store` (the configured keys), `authenticator`
(checking a request's key), `rate_limit` (per-key limits) and `audit` (one event per decision)."""

from __future__ import annotations

from gateway.security.audit import Outcome, audit
from gateway.security.authenticator import AUTH_SCHEMES, MCP_AUDIT_SCOPE, Authenticator, presented_key
from gateway.security.key_store import KeyStore, load_keys_file
from gateway.security.keys import (
    ADMIN_SCOPE,
    ENV_KEY_NAME,
    FINGERPRINT_HEX_CHARS,
    KEY_PREFIX,
    KEY_RANDOM_BYTES,
    KNOWN_SCOPES,
    MIN_DISTINCT_KEY_CHARS,
    MIN_STRONG_KEY_CHARS,
    ApiKeyEntry,
    GatewayConfigError,
    Principal,
    fingerprint,
    generate_key,
    hash_key,
    weak_key_reason,
)
from gateway.security.rate_limit import KeyRateLimiter, build_rate_limiter

__all__ = [
    "ADMIN_SCOPE",
    "AUTH_SCHEMES",
    "ENV_KEY_NAME",
    "FINGERPRINT_HEX_CHARS",
    "KEY_PREFIX",
    "KEY_RANDOM_BYTES",
    "KNOWN_SCOPES",
    "MCP_AUDIT_SCOPE",
    "MIN_DISTINCT_KEY_CHARS",
    "MIN_STRONG_KEY_CHARS",
    "ApiKeyEntry",
    "Authenticator",
    "GatewayConfigError",
    "KeyRateLimiter",
    "KeyStore",
    "Outcome",
    "Principal",
    "audit",
    "build_rate_limiter",
    "fingerprint",
    "generate_key",
    "hash_key",
    "load_keys_file",
    "presented_key",
    "weak_key_reason",
]
