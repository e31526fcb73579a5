"""A corpus of ways a secret is written into a log line (issue 21: 17 of 51 passed unmasked).
Each case asserts that the secret's value never appears in the output, wherever it sits."""

from __future__ import annotations

import json

import pytest

from gateway.services.redact import redact, redact_fields, redact_many, redact_nested

S = "S3cr3tV4lu3x"
ZWSP, ZWJ, SOFT_HYPHEN, BOM = "\u200b", "\u200d", "\u00ad", "\ufeff"
FULLWIDTH_PASSWORD = "".join(chr(ord(c) + 0xFEE0) for c in "password")

CORPUS = [
    # plain pairs
    f"password={S}",
    f"password: {S}",
    f"password = {S}",
    f"password\t=\t{S}",
    f"PASSWORD={S}",
    f"Password={S}",
    f"passwd={S}",
    f"pwd={S}",
    f"passphrase={S}",
    f"secret={S}",
    f"client_secret={S}",
    f"secret_key={S}",
    f"api_key={S}",
    f"apiKey={S}",
    f"x-api-key: {S}",
    f"access_token={S}",
    f"refresh_token={S}",
    f"token={S}",
    f"token_value={S}",
    f"auth_token={S}",
    f"credentials={S}",
    f"aws_secret_access_key={S}",
    f"db_password={S}",
    f"dbPassword={S}",
    f"PGPASSWORD={S}",
    f"mypassword={S}",
    f"user.password={S}",
    f"Authorization: {S}",
    f"Cookie: session={S}",
    f"password => {S}",
    f"password := {S}",
    f"login ok user=bob password={S}&next=/home",
    f"GET /cb?code=1&password={S} 200",
    # quoted and JSON
    f'password="{S}"',
    f"password='{S}'",
    f'password="{S} with spaces"',
    f'{{"password":"{S}"}}',
    f'{{"password": "{S}", "user": "bob"}}',
    f'{{"password" : "{S}"}}',
    f'{{"password":"ab\\"{S}"}}',  # an escaped quote inside the value
    f'{{"password":"ab\\\\\\"{S}"}}',
    f'{{"password":["{S}"]}}',
    f'{{"password":"{S}',  # a truncated line: the value never closes
    f'{{"payload":"{{\\"password\\":\\"{S}\\"}}"}}',  # JSON inside a JSON string
    f'{{"pass\\u0077ord":"{S}"}}',  # a JSON escape in the name
    f'{{"\\u0070\\u0061\\u0073\\u0073\\u0077\\u006f\\u0072\\u0064":"{S}"}}',
    f'{{"password"\\u003a"{S}"}}',
    f"password\\u003d{S}",
    # URL and HTML encodings
    f"password%3D{S}",
    f"password%3d{S}",
    f"password%3A{S}",
    f"p%61ssword={S}",
    f"q=x&password%3D%22{S}%22",
    f"password&#61;{S}",
    f"password&#x3D;{S}",
    # command lines
    f"--password {S}",
    f"--password={S}",
    f"mysql -u root --password '{S}' db",
    f"run --api-key {S} --verbose",
    f"-password {S}",
    # headers and tokens
    f"Authorization: Bearer {S}",
    f"Authorization: Bearer{S}",
    f"Bearer{S}",
    f"Authorization: Basic {S}",
    f"Authorization: Token {S}",
    f"token {S}",
    # obfuscated names
    f"pass{ZWSP}word={S}",
    f"pass{ZWJ}word={S}",
    f"pass{SOFT_HYPHEN}word={S}",
    f"{BOM}password={S}",
    f"{FULLWIDTH_PASSWORD}={S}",
    f'{{"{FULLWIDTH_PASSWORD}":"{S}"}}',
    f"pa\u017f\u017fword={S}",  # long s
    f"api_\u212aey={S}",  # Kelvin sign
    # markup and URLs
    f"<password>{S}</password>",
    f'<password type="x">{S}</password>',
    f"postgres://app:{S}@db.internal:5432/prod",
    f"redis://:{S}@cache:6379",
    f"amqp://user:{S}@mq/vhost",
    # several on one line, and a secret after a clean pair
    f"a=1 b=2 password={S} c=3",
    f"user=bob msg=password={S}",
    f"password=first secret={S}",
]


@pytest.mark.parametrize("line", CORPUS)
def test_the_secret_never_appears(line: str) -> None:
    masked = redact(line)
    assert S not in masked, masked
    assert "[REDACTED" in masked
    assert redact(masked) == masked  # masking twice changes nothing
    assert redact_many(["ok", line, "ok"]) == ["ok", masked, "ok"]


@pytest.mark.parametrize("line", CORPUS)
def test_the_secret_never_appears_in_json_encoded_lines(line: str) -> None:
    """The same lines as a JSON document's field (the shipper's GCS lines are JSON)."""
    encoded = json.dumps({"msg": line, "level": "info"})
    assert S not in redact(encoded).replace("\\", "")


@pytest.mark.parametrize(
    "name",
    ["password", f"pass{ZWSP}word", FULLWIDTH_PASSWORD, "token_value", "passphrase", "Authorization",
     "pass\\u0077ord", "db_password"],
)
def test_labels_named_like_a_secret_are_masked(name: str) -> None:
    assert redact_fields({name: S}) == {name: "[REDACTED]"}


CLEAN = [
    "2024-05-01T12:00:00Z INFO trade executed symbol=AAPL qty=100 price=123.45",
    "max_tokens=512 token_count=311 model=gpt-4o-mini",
    "usage prompt_tokens=12 completion_tokens=30 tokens: 42",
    "bypassMode=true isTokenValid=true BYPASS=1 passenger=3",
    "password_hint=shown secret_name=db key_id=abc api_key_id=7",
    "user-token abc --verbose --keyboard us",
    "café über straße=1 ключ=значение",
    "GET https://example.com/api/v1/items?page=2&q=%20x 200",
    "12:00:01 a=b c:d",
]


@pytest.mark.parametrize("line", CLEAN)
def test_ordinary_text_is_left_alone(line: str) -> None:
    assert redact(line) == line


def test_nested_metadata_is_redacted_at_any_depth() -> None:
    """Categorized labels put structured metadata and parsed labels one level down."""
    meta = {
        "structuredMetadata": {"trace_id": "abc", "db_password": S},
        "parsed": {"msg": f"login password={S}", "________": S, "tokens": ["a", f"token={S}"]},
        "count": 3,
    }
    masked = redact_nested(meta)
    assert S not in json.dumps(masked, ensure_ascii=False)
    assert masked["structuredMetadata"] == {"trace_id": "abc", "db_password": "[REDACTED]"}
    assert masked["parsed"]["msg"] == "login password=[REDACTED]" and masked["count"] == 3
