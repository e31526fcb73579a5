"""Secrets in log text are masked; ordinary text is left alone."""

from __future__ import annotations

import time

import pytest

from gateway.services.query import metric_answer
from gateway.services.redact import redact, redact_fields, redact_many, sensitive_name

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
    # found by a review: this gateway's own keys, camelCase and upper-case names, escaped JSON,
    # `=>`, XML, Slack webhook URLs
    ("retrying with gwk_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA", "Zm9vYmFyYmF6", "retrying with [REDACTED]"),
    ('{"dbPassword":"hunter2","githubToken":"abcd1234"}', "hunter2", '"githubToken":"[REDACTED]"'),
    ("PGPASSWORD=hunter2 psql -h db", "hunter2", "PGPASSWORD=[REDACTED] psql"),
    ('{"payload":"{\\"password\\":\\"hunter2\\"}"}', "hunter2", '\\"password\\":\\"[REDACTED]\\"'),
    ('password => "hunter2"', "hunter2", 'password => "[REDACTED]"'),
    ("<password>hunter2</password>", "hunter2", "<password>[REDACTED]</password>"),
    ("POST https://hooks.slack.com/services/T0000/B0000/XXXXXXXX failed", "XXXXXXXX",
     "https://hooks.slack.com/services/[REDACTED] failed"),
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
    "bypassMode=true isTokenValid=true BYPASS=1",
    "usage prompt_tokens=12 completion_tokens=30 tokens: 42",
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
        'password:\\"' + "a" * 200_000,
        "aPassword" * 20_000 + "=x",
        "<password>" * 20_000,
        "password =>" * 20_000,
    ]
    started = time.perf_counter()
    for line in hostile:
        redact(line)
    assert time.perf_counter() - started < 2.0


FRAGMENTS = [
    "password=hunter2",
    "PASSWORD: 'x y'",
    "pa\u017f\u017fword=s3cret",  # long s folds to s for the regex engines
    "api_\u212aey=abc",  # Kelvin sign folds to k
    "Bearer abcdefghijk",
    "bAsIc dXNlcjpwYXNz",
    "tOkEn abcdefghijklmnop",
    "https://u:p@host/x",
    "AKIAIOSFODNN7EXAMPLE",
    "sk-proj-AbCdEfGhIjKlMnOpQrStUv",
    "rk_live_abcdefghijklmnopqrst",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "xoxb-1234567890-abc",
    "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    "client_secret=abc",
    "credentials: xyz",
    "keyboard",
    "highlight through the night",
    "passed",
    "trade executed qty=5",
    "caf\u00e9 \u00fcber",
    "\n",
    " ",
    '"',
    "=",
    ":",
]


def _all_rules(text: str) -> str:
    from gateway.services.redact import substitute_all

    return substitute_all(text)


def test_shortcuts_never_change_what_is_masked() -> None:
    """The trigger scan and each rule's required text only skip work: applying every rule to
    every line gives the same text."""
    import random

    rng = random.Random(3)
    lines = ["".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(0, 6))) for _ in range(3_000)]
    lines += [fragment.upper() for fragment in FRAGMENTS] + FRAGMENTS
    expected = [_all_rules(line) for line in lines]
    assert [redact(line) for line in lines] == expected
    assert redact_many(lines) == expected
    for start in range(0, len(lines), 97):  # pages of many sizes, the lines at their edges too
        assert redact_many(lines[start : start + 1 + start % 13]) == expected[start : start + 1 + start % 13]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True), ("db_password", True), ("dbPassword", True), ("PGPASSWORD", True),
        ("MYSQL_PWD", True), ("githubToken", True), ("db_api_key", True), ("client_secret", True),
        ("x-api-key", True), ("private_key", True),
        ("prompt_tokens", False), ("token_count", False), ("api_key_id", False), ("secret_name", False),
        ("bypass", False), ("passenger", False), ("keyboard", False), ("author", False), ("level", False),
    ],
)
def test_label_and_field_names_that_hold_secrets(name: str, secret: bool) -> None:
    assert sensitive_name(name) is secret
    assert (redact_fields({name: "value-1"}) == {name: "[REDACTED]"}) is secret


def test_metric_series_labels_are_redacted_like_stream_labels() -> None:
    data = {
        "resultType": "vector",
        "result": [{"metric": {"db_password": "hunter2", "note": "token abcdefghijkl"}, "value": [1, "3"]}],
    }
    echo = {"since": "1970-01-01T00:00:00Z", "until": "1970-01-01T00:00:01Z"}
    at = ["1970-01-01T00:00:01Z", "3"]
    assert metric_answer(data, True, echo)["result"] == [
        {"metric": {"db_password": "[REDACTED]", "note": "token [REDACTED]"}, "value": at}
    ]
    assert metric_answer(data, False, echo)["result"] == [{**data["result"][0], "value": at}]
