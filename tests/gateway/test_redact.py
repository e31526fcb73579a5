"""Secrets in log text are masked; ordinary text is left alone."""

from __future__ import annotations

import time

import pytest

from gateway.services.redact import redact, redact_many

SECRET_CASES = [
    ("Authorization: Bearer abcdef1234567890XYZ", "abcdef1234567890XYZ", "Bearer [REDACTED]"),
    ("authorization: basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==", "basic [REDACTED]"),
    ("x-api-key: 9f8e7d6c5b4a3210", "9f8e7d6c5b4a3210", "x-api-key: [REDACTED]"),
    ('{"x-api-key": "k3y-value"}', "k3y-value", '"x-api-key": "[REDACTED]"'),
    ("calling openai with sk-proj-AbCdEfGhIjKlMnOpQrStUv", "AbCdEfGhIjKlMnOpQrStUv", "[REDACTED]"),
    ("key=sk-abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnop", "key=[REDACTED]"),
    ("postgres://app:s3cr3t-pw@db.internal:5432/prod", "s3cr3t-pw", "postgres://app:[REDACTED]@db.internal"),
    ("redis://:onlypass@cache:6379", "onlypass", "[REDACTED]@cache"),
    ("aws key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE", "[REDACTED AWS KEY]"),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI", "[REDACTED]"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY----- done",
        "MIIEpAIBAAKCAQEA",
        "[REDACTED PRIVATE KEY] done",
    ),
    (
        "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXk (truncated",
        "b3BlbnNzaC1rZXk",
        "[REDACTED PRIVATE KEY]",
    ),
    (
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3jVmNHl0w5N",
        "[REDACTED",
    ),
    ("password=hunter2&user=bob", "hunter2", "password=[REDACTED]&user=bob"),
    ('{"password": "correct horse battery", "user": "bob"}', "correct horse", '"password": "[REDACTED]"'),
    ("DB_PASSWORD: 'pa ss'", "pa ss", "DB_PASSWORD: '[REDACTED]'"),
    ("client_secret=abc123def", "abc123def", "client_secret=[REDACTED]"),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123456789 pushed", "ghp_abcdefghij", "[REDACTED] pushed"),
]


@pytest.mark.parametrize(("text", "secret", "expected_part"), SECRET_CASES)
def test_secrets_are_masked(text: str, secret: str, expected_part: str) -> None:
    masked = redact(text)
    assert secret not in masked
    assert expected_part in masked


CLEAN_LINES = [
    "2024-05-01T12:00:00Z INFO trade executed symbol=AAPL qty=100 price=123.45",
    "max_tokens=512 token_count=311 model=gpt-4o-mini",
    "GET https://example.com/api/v1/items?page=2 200",
    "user bob logged in from 10.0.0.1",
    "passed 42 tests; keyboard layout us",
    "",
]


@pytest.mark.parametrize("line", CLEAN_LINES)
def test_clean_lines_are_unchanged(line: str) -> None:
    assert redact(line) == line


def test_redaction_is_idempotent() -> None:
    once = redact("password=x Authorization: Bearer abcdefghijk https://u:p@h/")
    assert redact(once) == once


def test_redact_many_masks_only_the_lines_with_secrets() -> None:
    lines = [*CLEAN_LINES, "login password=hunter2", "Token abcdefghijklmnop"]
    masked = redact_many(lines)
    assert masked[: len(CLEAN_LINES)] == CLEAN_LINES
    assert masked[-2:] == ["login password=[REDACTED]", "Token [REDACTED]"]
    assert redact_many(CLEAN_LINES) == CLEAN_LINES


def test_long_hostile_lines_stay_fast() -> None:
    hostile = [
        "https://" + "a" * 200_000,
        "password" + "=" * 200_000,
        "-----BEGIN RSA PRIVATE KEY-----" * 5_000,
    ]
    started = time.perf_counter()
    for line in hostile:
        redact(line)
    assert time.perf_counter() - started < 2.0
