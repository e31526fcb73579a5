"""Who is calling: the key a request presents, checked for validity, expiry, scope and rate limit,
with one audit event per decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.datastructures import Headers

from gateway.security.audit import audit
from gateway.security.key_store import KeyStore
from gateway.security.keys import ApiKeyEntry, Principal, fingerprint
from gateway.security.rate_limit import KeyRateLimiter
from gateway.services.errors import NotAuthenticated, NotPermitted, RateLimited

MCP_AUDIT_SCOPE = "mcp"  # the audit event of an MCP request before its tool's scope is known
AUTH_SCHEMES = ("bearer", "apikey")  # Authorization: <scheme> <key>, case-insensitive


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
