"""The Loki stand-in must refuse what Loki refuses, or the sink tests prove nothing."""

from __future__ import annotations

import gzip
import json

import cramjam
import httpx
import pytest

from tests.loki_mock import LokiMock, decode_protobuf, parse_label_string

PUSH = "http://loki/loki/api/v1/push"


def _post(mock: LokiMock, body: bytes, **headers: str) -> httpx.Response:
    with httpx.Client(transport=httpx.MockTransport(mock.handler)) as client:
        return client.post(PUSH, content=body, headers=headers)


def _json_body(labels: dict[str, str], values: list[list[object]]) -> bytes:
    return json.dumps({"streams": [{"stream": labels, "values": values}]}).encode()


def test_protobuf_must_be_snappy_block_format() -> None:
    with pytest.raises(AssertionError, match="snappy"):
        decode_protobuf(b"\x0a\x05hello")  # raw protobuf, not compressed
    framed = bytes(cramjam.snappy.compress(b"\x0a\x00"))  # framing format is not what Loki reads
    with pytest.raises(AssertionError):
        decode_protobuf(framed)


def test_content_type_is_required() -> None:
    with pytest.raises(AssertionError, match="Content-Type"):
        _post(LokiMock(), _json_body({"a": "b"}, [["1", "x"]]), **{"Content-Type": "text/plain"})


def test_json_timestamps_must_be_strings_of_ns() -> None:
    with pytest.raises(AssertionError, match="string of nanoseconds"):
        _post(LokiMock(), _json_body({"a": "b"}, [[1, "x"]]), **{"Content-Type": "application/json"})


def test_gzip_header_without_gzip_body_is_refused() -> None:
    with pytest.raises(AssertionError, match="gzip"):
        _post(LokiMock(), _json_body({"a": "b"}, [["1", "x"]]),
              **{"Content-Type": "application/json", "Content-Encoding": "gzip"})


def test_label_string_syntax() -> None:
    assert parse_label_string('{a="b", c="d"}') == {"a": "b", "c": "d"}
    for bad in ['a="b"', '{a=b}', '{1a="b"}', '{a="b", a="c"}', "{}", "{a='b'}"]:
        with pytest.raises(AssertionError):
            parse_label_string(bad)


def test_dedup_drops_exact_duplicates_only() -> None:
    mock = LokiMock()
    values = [["5", "same"], ["5", "same"], ["5", "other line"], ["6", "same"]]
    body = gzip.compress(_json_body({"a": "b"}, values))
    response = _post(mock, body, **{"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 204
    _post(mock, body, **{"Content-Type": "application/json", "Content-Encoding": "gzip"})
    stored = sorted((ts, line) for _, ts, line, _ in mock.entries())
    assert stored == [(5, "other line"), (5, "same"), (6, "same")]
    assert len(mock.requests) == 2


def test_auth_is_checked() -> None:
    mock = LokiMock(bearer_token="t")
    with pytest.raises(AssertionError, match="bearer"):
        _post(mock, _json_body({"a": "b"}, [["1", "x"]]), **{"Content-Type": "application/json"})
    assert mock.violations
