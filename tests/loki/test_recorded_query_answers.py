"""The gateway's Loki query mocks answer from files recorded from the real binary
(tests/fixtures/loki/query/*.json). This test asks the real Loki the same questions again and
compares each answer's structure (status, content type, keys, value types and entry shapes; the
exact text of error messages) with the recording, so a Loki upgrade that changes an answer shows
here as drift instead of passing against stale mocks.

Re-record (after checking the drift is Loki's, not ours):
    RECORD_LOKI_QUERY_ANSWERS=1 LOKI_BINARY=... python -m pytest tests/loki/test_recorded_query_answers.py
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.gateway.loki_answers import ANSWERS_DIR, RecordedAnswer, load_answer
from tests.real_loki import LOKI_VERSION, RealLoki, run_id

RECORD_ENV = "RECORD_LOKI_QUERY_ANSWERS"
CATEGORIZE = {"X-Loki-Response-Encoding-Flags": "categorize-labels"}
NORMAL_BASE_NS = 1_700_000_000 * 1_000_000_000  # recorded timestamps are shifted to start here
RUN_ID_PLACEHOLDER = "RUN_ID"
NS_DIGITS = 19
PATTERNS_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Question:
    path: str
    params: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


def questions(rid: str, start_ns: int, end_ns: int) -> dict[str, Question]:
    """Every kind of answer the gateway reads from Loki's query API (and the refusals it relays)."""
    sel = f'{{run_id="{rid}"}}'
    none = f'{{run_id="{rid}-none"}}'
    window = {"start": str(start_ns), "end": str(end_ns)}
    logs = {**window, "limit": "10", "direction": "forward"}
    return {
        "query_range_streams": Question("/loki/api/v1/query_range", {"query": sel, **logs}, CATEGORIZE),
        "query_range_streams_parsed": Question(
            "/loki/api/v1/query_range", {"query": f"{sel} | json", **logs}, CATEGORIZE
        ),
        # without the header Loki merges metadata into the labels: one "stream" per entry
        "query_range_streams_uncategorized": Question("/loki/api/v1/query_range", {"query": sel, **logs}),
        "query_range_streams_empty": Question(
            "/loki/api/v1/query_range", {"query": none, **logs}, CATEGORIZE
        ),
        "query_range_matrix": Question(
            "/loki/api/v1/query_range",
            {"query": f"sum by (level) (count_over_time({sel}[1m]))", **window, "step": "60s"},
            CATEGORIZE,
        ),
        "query_vector": Question(
            "/loki/api/v1/query",
            {"query": f"sum by (level) (count_over_time({sel}[10m]))", "time": str(end_ns)},
            CATEGORIZE,
        ),
        "labels": Question("/loki/api/v1/labels", {"query": sel, **window}),
        "labels_empty": Question("/loki/api/v1/labels", {"query": none, **window}),
        "label_values": Question("/loki/api/v1/label/level/values", {"query": sel, **window}),
        "label_values_empty": Question("/loki/api/v1/label/level/values", {"query": none, **window}),
        "series": Question("/loki/api/v1/series", {"match[]": sel, **window}),
        "index_stats": Question("/loki/api/v1/index/stats", {"query": sel, **window}),
        "patterns": Question("/loki/api/v1/patterns", {"query": f'{{run_id="{rid}-patterns"}}', **window}),
        "patterns_empty": Question("/loki/api/v1/patterns", {"query": none, **window}),
        "error_parse": Question("/loki/api/v1/query_range", {"query": f'{{run_id="{rid}"', **logs}),
        "error_empty_matcher": Question("/loki/api/v1/query_range", {"query": '{run_id=""}', **logs}),
        "error_max_entries": Question(
            "/loki/api/v1/query_range", {"query": sel, **window, "limit": "10001"}, CATEGORIZE
        ),
        "error_instant_log_query": Question(
            "/loki/api/v1/query", {"query": sel, "time": str(end_ns)}, CATEGORIZE
        ),
    }


def plant(loki: RealLoki, rid: str, base_ns: int) -> None:
    """Lines of two levels, with and without structured metadata, some of them JSON."""
    labels = {"source": "gcs", "service_name": "trades", "bucket": "b", "prefix": "trades", "run_id": rid}
    info = [
        [
            str(base_ns + i * 1_000_000),
            f'{{"msg":"order {i} filled","qty":{i}}}',
            {"object": "trades/2024-01-01.jsonl", "generation": "17", "line_no": str(i)},
        ]
        for i in range(1, 4)
    ]
    info.append([str(base_ns + 5_000_000), "plain line without metadata"])
    error = [[str(base_ns + 4_000_000), "order 4 failed: timeout", {"object": "trades/x.jsonl"}]]
    # the pattern ingester only reports a pattern seen often enough (5 lines are not, 50 are)
    repeated = [[str(base_ns + i * 1_000_000), f"user {i} logged in after {i * 3} ms"] for i in range(50)]
    loki.push_raw(
        {
            "streams": [
                {"stream": {**labels, "level": "info"}, "values": info},
                {"stream": {**labels, "level": "error"}, "values": error},
                {"stream": {**labels, "run_id": f"{rid}-patterns", "level": "info"}, "values": repeated},
            ]
        }
    ).raise_for_status()


def normalise(value: Any, rid: str, base_ns: int) -> Any:
    """Run ids and timestamps made stable, statistics zeroed: what is left is Loki's format."""
    if isinstance(value, dict):
        return {k: _zero_numbers(v) if k == "stats" else normalise(v, rid, base_ns) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, rid, base_ns) for v in value]
    if isinstance(value, str):
        if len(value) == NS_DIGITS and value.isdigit():
            return str(int(value) - base_ns + NORMAL_BASE_NS)
        return value.replace(rid, RUN_ID_PLACEHOLDER)
    if isinstance(value, int | float) and not isinstance(value, bool) and 1e9 <= value < 1e10:
        shifted = value - base_ns / 1e9 + NORMAL_BASE_NS / 1e9
        return round(shifted, 3) if isinstance(value, float) else int(shifted)
    return value


def _zero_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _zero_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_zero_numbers(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return 0
    return value


def structure(value: Any) -> Any:
    """The shape of a JSON value: keys and types, list elements as the set of their shapes."""
    if isinstance(value, dict):
        return {k: structure(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return sorted({json.dumps(structure(v), sort_keys=True) for v in value})
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return "string"


def ask(loki: RealLoki, question: Question, rid: str, base_ns: int) -> RecordedAnswer:
    response = loki.http.get(question.path, params=question.params, headers=question.headers)
    content_type = response.headers.get("content-type", "")
    body: Any = response.json() if content_type.startswith("application/json") else response.text
    return RecordedAnswer(
        request=normalise(
            {"path": question.path, "params": question.params, "headers": question.headers}, rid, base_ns
        ),
        status=response.status_code,
        content_type=content_type,
        body=normalise(body, rid, base_ns),
        loki_version=LOKI_VERSION,
    )


def record_all(loki: RealLoki) -> dict[str, RecordedAnswer]:
    rid = run_id("rec")
    base_ns = (time.time_ns() // 10**9 - 120) * 10**9
    plant(loki, rid, base_ns)
    asked = questions(rid, base_ns - 10**9 * 60, base_ns + 10**9 * 60)
    deadline = time.monotonic() + PATTERNS_WAIT_SECONDS
    while True:  # the pattern ingester needs a moment for lines it has just been sent
        patterns = ask(loki, asked["patterns"], rid, base_ns)
        if patterns.body.get("data") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return {name: patterns if name == "patterns" else ask(loki, q, rid, base_ns) for name, q in asked.items()}


def differences(recorded: RecordedAnswer, fresh: RecordedAnswer) -> list[str]:
    found = []
    if recorded.request != fresh.request:
        found.append(f"request: recorded {recorded.request}, now {fresh.request}")
    if recorded.status != fresh.status:
        found.append(f"status: recorded {recorded.status}, now {fresh.status}")
    if recorded.content_type != fresh.content_type:
        found.append(f"content type: recorded {recorded.content_type!r}, now {fresh.content_type!r}")
    if isinstance(recorded.body, str) or isinstance(fresh.body, str):
        if recorded.body != fresh.body:
            found.append(f"body: recorded {recorded.body!r}, now {fresh.body!r}")
    elif structure(recorded.body) != structure(fresh.body):
        found.append(
            "body structure: recorded "
            f"{json.dumps(structure(recorded.body))}, now {json.dumps(structure(fresh.body))}"
        )
    return found


def test_recorded_query_answers_match_the_real_loki(real_loki: RealLoki) -> None:
    fresh = record_all(real_loki)
    if os.environ.get(RECORD_ENV):
        ANSWERS_DIR.mkdir(parents=True, exist_ok=True)
        for name, answer in fresh.items():
            answer.write(ANSWERS_DIR / f"{name}.json")
    drift: dict[str, list[str]] = {}
    for name, answer in fresh.items():
        found = differences(load_answer(name), answer)
        if found:
            drift[name] = found
    assert not drift, (
        f"Loki's answers differ from the recordings in {ANSWERS_DIR} (recorded with Loki "
        f"{LOKI_VERSION}); check the gateway against the new format, then re-record with "
        f"{RECORD_ENV}=1:\n" + json.dumps(drift, indent=1)
    )


def test_every_recording_is_asked_again() -> None:
    """A recording nobody re-asks would go stale silently."""
    recorded = {path.stem for path in ANSWERS_DIR.glob("*.json")}
    assert recorded == set(questions("r", 0, 1)), recorded ^ set(questions("r", 0, 1))


def test_recordings_show_what_the_gateway_relies_on() -> None:
    """The facts about Loki the gateway's parsing is built on, read from the recordings."""
    streams = load_answer("query_range_streams").body["data"]
    assert streams["encodingFlags"] == ["categorize-labels"]
    by_level = {s["stream"]["level"]: s["values"] for s in streams["result"]}
    assert set(by_level) == {"info", "error"}  # one stream per real label set
    assert all(len(value) == 3 for values in by_level.values() for value in values)
    assert {"structuredMetadata"} <= set(by_level["info"][0][2]) and by_level["info"][-1][2] == {}
    merged = load_answer("query_range_streams_uncategorized").body["data"]
    assert "encodingFlags" not in merged and len(merged["result"]) == 5  # one "stream" per line
    parsed = load_answer("query_range_streams_parsed").body["data"]["result"]
    assert any("parsed" in value[2] for stream in parsed for value in stream["values"])
    assert load_answer("labels_empty").body == {"status": "success"}
    assert load_answer("label_values_empty").body == {"status": "success"}
    assert load_answer("query_range_matrix").body["data"]["resultType"] == "matrix"
    assert "encodingFlags" not in load_answer("query_range_matrix").body["data"]
    assert load_answer("error_max_entries").status == 400


@pytest.fixture(autouse=True)
def _answers_exist() -> None:
    if not any(ANSWERS_DIR.glob("*.json")) and not os.environ.get(RECORD_ENV):
        pytest.fail(f"no recordings in {ANSWERS_DIR}: record them with {RECORD_ENV}=1")


def test_differences_see_a_changed_format_and_ignore_changed_values() -> None:
    recorded = load_answer("query_range_streams")
    values_only = load_answer("query_range_streams")
    values_only.body["data"]["result"][0]["values"][0][1] = "another line"
    values_only.body["data"]["stats"]["summary"]["execTime"] = 0.25
    assert differences(recorded, values_only) == []
    flat = load_answer("query_range_streams")
    value = flat.body["data"]["result"][0]["values"][0]
    value[2] = value[2]["structuredMetadata"]  # the old mock's flat metadata
    assert differences(recorded, flat) != []
    refused = load_answer("error_parse")
    reworded = RecordedAnswer(refused.request, refused.status, refused.content_type, "parse error!", "x")
    assert differences(refused, reworded) != []
