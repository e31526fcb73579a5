"""Unit tests of key handling: parsing headers, the key store, constant-time matching, limits."""

from __future__ import annotations

import hmac
import os
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from starlette.datastructures import Headers

from gateway.errors import Failure, as_api_error
from gateway.security import (
    ApiKeyEntry,
    GatewayConfigError,
    KeyRateLimiter,
    KeyStore,
    fingerprint,
    generate_key,
    hash_key,
    presented_key,
)
from gateway.security import key_store as security
from tests.conftest import clear_of_a_minute_boundary
from tests.gateway.conftest import KeysFile, make_settings


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-api-key": "k1"}, "k1"),
        ({"authorization": "Bearer k2"}, "k2"),
        ({"authorization": "bearer k2"}, "k2"),
        ({"authorization": "ApiKey k3"}, "k3"),
        ({"authorization": "APIKEY   k3 "}, "k3"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, None),
        ({"authorization": "Bearer "}, None),
        ({"x-api-key": "  "}, None),
        ({}, None),
    ],
)
def test_presented_key_from_each_header_form(headers: dict[str, str], expected: str | None) -> None:
    assert presented_key(Headers(headers)) == expected


def test_generated_keys_are_unique_and_long() -> None:
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(k.startswith("gwk_") and len(k) >= 40 for k in keys)


def test_fingerprint_is_short_and_does_not_contain_the_key() -> None:
    key = generate_key()
    ref = fingerprint(key)
    assert ref == "sha256:" + hash_key(key)[:8]
    assert key not in ref


def test_no_keys_refuses_to_start() -> None:
    with pytest.raises(GatewayConfigError, match="AI_MONITORING_API_KEY or GATEWAY_API_KEYS_FILE"):
        KeyStore(make_settings())


@pytest.mark.parametrize(
    "weak",
    ["abc", "x" * 40, "changeme-changeme-changeme", "password123password123pas", "a1b2c3d4e5f6a1b2c3d4e5f6"],
)
def test_weak_full_access_key_refuses_to_start_without_echoing_it(weak: str) -> None:
    with pytest.raises(GatewayConfigError, match="AI_MONITORING_API_KEY is too weak") as raised:
        KeyStore(make_settings(ai_monitoring_api_key=weak))
    assert weak not in str(raised.value)


def test_generated_and_random_tokens_are_strong_enough() -> None:
    import secrets

    for key in (generate_key(), secrets.token_urlsafe(18), secrets.token_hex(16)):
        assert KeyStore(make_settings(ai_monitoring_api_key=key)).entries()


def test_empty_keys_file_refuses_to_start(keys_file: KeysFile) -> None:
    keys_file.path.write_text("keys: []\n")
    with pytest.raises(GatewayConfigError, match="no API keys configured"):
        KeyStore(make_settings(gateway_api_keys_file=keys_file.path))


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "a", "sha256": "0" * 64, "scopes": ["root"]}, "unknown scopes"),
        ({"name": "a", "sha256": "xyz", "scopes": ["admin"]}, "sha256"),
        ({"name": "a", "sha256": "0" * 64, "scopes": []}, "scopes"),
        ({"name": "a", "sha256": "0" * 64, "scopes": ["admin"], "label_policy": "source=gcs"}, "selector"),
        ({"name": "a", "sha256": "0" * 64, "scopes": ["admin"], "label_policy": "{source=gcs}"}, "quoted"),
        (
            {"name": "a", "sha256": "0" * 64, "scopes": ["admin"], "label_policy": '{a="b"}{c="d"}'},
            "single selector",
        ),
        ({"name": "a", "sha256": "0" * 64, "scopes": ["admin"], "key": "plain"}, "key"),
    ],
)
def test_invalid_keys_file_entries_are_refused(keys_file: KeysFile, entry: dict, problem: str) -> None:
    keys_file.entries.append(entry)
    keys_file.path.write_text(yaml.safe_dump(keys_file.entries))
    with pytest.raises(GatewayConfigError, match=problem):
        KeyStore(make_settings(gateway_api_keys_file=keys_file.path))


def test_env_key_and_file_keys_match_and_carry_their_policy(keys_file: KeysFile) -> None:
    env_key = generate_key()
    scoped = keys_file.add("agent", ["logs:read"], tenant="team-a", label_policy='{source="gcs"}')
    store = KeyStore(make_settings(ai_monitoring_api_key=env_key, gateway_api_keys_file=keys_file.path))

    env_entry = store.match(env_key)
    assert env_entry is not None and env_entry.name == "AI_MONITORING_API_KEY"
    assert env_entry.principal().allows("alerts:write")  # admin implies every scope

    principal = store.match(scoped).principal()  # type: ignore[union-attr]
    assert principal.name == "agent"
    assert principal.tenant == "team-a"
    assert principal.label_policy == '{source="gcs"}'
    assert principal.allows("logs:read") and not principal.allows("proxy")
    assert store.match(scoped[:-1]) is None
    assert store.match("") is None


def test_rotation_two_keys_valid_at_once_and_file_reloaded(keys_file: KeysFile) -> None:
    old = keys_file.add("ci", ["logs:read"])
    store = KeyStore(make_settings(gateway_api_keys_file=keys_file.path))
    new = keys_file.add("ci", ["logs:read"])  # rotation: both valid until the old one is removed
    stat = keys_file.path.stat()
    os.utime(keys_file.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert store.match(old) is not None
    assert store.match(new) is not None

    keys_file.entries.pop(0)
    keys_file.path.write_text(yaml.safe_dump(keys_file.entries))
    os.utime(keys_file.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000))
    assert store.match(old) is None
    assert store.match(new) is not None


def test_broken_keys_file_edit_keeps_previous_keys(keys_file: KeysFile) -> None:
    key = keys_file.add("ci", ["logs:read"])
    store = KeyStore(make_settings(gateway_api_keys_file=keys_file.path))
    keys_file.path.write_text("keys: [ {name: broken")
    assert store.match(key) is not None


def test_a_removed_keys_file_revokes_its_keys_and_a_restored_one_brings_them_back(
    keys_file: KeysFile,
) -> None:
    key = keys_file.add("ci", ["logs:read"])
    store = KeyStore(make_settings(gateway_api_keys_file=keys_file.path))
    keys_file.path.unlink()
    assert store.match(key) is None
    keys_file.path.write_text(yaml.safe_dump(keys_file.entries))
    assert store.match(key) is not None


def test_comparison_is_constant_time_over_every_key(
    keys_file: KeysFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every configured digest is compared with hmac.compare_digest, even after a match, so
    the time taken does not depend on which key (if any) matched."""
    first = keys_file.add("first", ["logs:read"])
    for index in range(4):
        keys_file.add(f"k{index}", ["logs:read"])
    store = KeyStore(make_settings(gateway_api_keys_file=keys_file.path))
    calls: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def counting_compare(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", counting_compare)
    assert store.match(first).name == "first"  # type: ignore[union-attr]
    assert len(calls) == 5
    calls.clear()
    assert store.match("wrong") is None
    assert len(calls) == 5
    assert all(len(a) == len(b) == 32 for a, b in calls)  # digests, never the raw key


def test_expiry_is_timezone_aware() -> None:
    naive = ApiKeyEntry(
        name="a", sha256="0" * 64, scopes=frozenset({"admin"}), expires_at=datetime(2000, 1, 1)
    )
    assert naive.expires_at is not None and naive.expires_at.tzinfo is UTC
    assert naive.expired(datetime.now(UTC))
    future = naive.model_copy(update={"expires_at": datetime.now(UTC) + timedelta(days=1)})
    assert not future.expired(datetime.now(UTC))


async def test_rate_limiter_answers_429_with_retry_after_per_key() -> None:
    limiter = KeyRateLimiter("2/minute")
    clear_of_a_minute_boundary()
    await limiter.check("a")
    await limiter.check("a")
    with pytest.raises(Failure) as raised:
        await limiter.check("a")
    assert as_api_error(raised.value).status == 429
    assert raised.value.code == "rate_limited"
    assert 1 <= int(as_api_error(raised.value).headers["Retry-After"]) <= 60
    await limiter.check("b")  # another key has its own budget
