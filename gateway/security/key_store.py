"""The configured keys: GATEWAY_API_KEYS_FILE (reread when it changes) and the full-access key
of AI_MONITORING_API_KEY, matched in constant time."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config import GatewaySettings
from gateway.security.keys import (
    ADMIN_SCOPE,
    ENV_KEY_NAME,
    ApiKeyEntry,
    GatewayConfigError,
    hash_key,
    weak_key_reason,
)

log = logging.getLogger(__name__)


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
