"""Answers of the real Loki (tests/fixtures/loki/query/*.json), recorded from the binary by
tests/loki/test_recorded_query_answers.py, which also re-asks them to catch drift. Mocks of Loki
build their answers from these, so they speak the format the real Loki speaks."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx

ANSWERS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "loki" / "query"


@dataclass(frozen=True)
class RecordedAnswer:
    request: dict[str, Any]
    status: int
    content_type: str
    body: Any
    loki_version: str

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=False) + "\n", encoding="utf-8")


@cache
def _read(name: str) -> RecordedAnswer:
    raw = json.loads((ANSWERS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return RecordedAnswer(**raw)


def load_answer(name: str) -> RecordedAnswer:
    """The recording `name` (a fresh copy of its body, free to change)."""
    answer = _read(name)
    return RecordedAnswer(
        answer.request, answer.status, answer.content_type, copy.deepcopy(answer.body), answer.loki_version
    )


def recorded_response(name: str, body: Any = None) -> httpx.Response:
    """An httpx response with the recording's status and content type, and its body or `body`
    (which must be in the recording's format)."""
    answer = load_answer(name)
    content = answer.body if body is None else body
    raw = content if isinstance(content, str) else json.dumps(content, separators=(",", ":"))
    return httpx.Response(answer.status, content=raw.encode(), headers={"content-type": answer.content_type})


def loki_message(name: str) -> str:
    """The text of a recorded refusal (Loki answers those as text/plain)."""
    body = load_answer(name).body
    assert isinstance(body, str), name
    return body


def recorded_vector(result: list[dict[str, Any]]) -> httpx.Response:
    """Loki's answer to an instant metric query (recorded envelope and stats) holding `result`."""
    body = load_answer("query_vector").body
    body["data"]["result"] = result
    return recorded_response("query_vector", body)


def recorded_streams(result: list[dict[str, Any]]) -> httpx.Response:
    """Loki's categorized-labels answer to a log query (recorded envelope and stats) with `result`."""
    body = load_answer("query_range_streams").body
    body["data"]["result"] = result
    return recorded_response("query_range_streams", body)
