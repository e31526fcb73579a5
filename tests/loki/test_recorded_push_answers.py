"""Loki's answers to refused pushes, as recorded from the real binary (tests/fixtures/loki/push/).

- Re-recorded against the real Loki of this session: the status and the shape of every answer
  must still be the recorded one, so a Loki upgrade that changes a message fails here.
- The shipper's parser reads every recorded answer right: which entries were refused, why, and
  whether the answer settles the push (everything else stored).
- The HTTP mock answers the same scenarios with bodies of the same shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipper.sinks.loki import rejections
from shipper.sinks.loki.encode import Entry, StreamLabels
from tests.loki.push_answers import SCENARIOS, TINY_RATE_FLAGS, Scenario, expand, load, record, shape
from tests.loki_mock import LokiMock, json_push_request, rate_limited_message
from tests.real_loki import RealLoki, own_loki

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
H = 3600 * 1_000_000_000

# scenario -> (status, {refused line: reason}, settled)
EXPECTED: dict[str, tuple[int, dict[str, str], bool]] = {
    "too_far_behind_listed": (400, {f"old {i}": "too_far_behind" for i in range(12)}, True),
    "too_far_behind_hidden": (204, {}, False),
    "too_far_behind_last_stream": (400, {f"behind {i}": "too_far_behind" for i in range(3)}, False),
    "too_old": (400, {"ancient 0": "too_old", "ancient 1": "too_old"}, True),
    "too_old_streams": (400, {"ancient a": "too_old", "ancient b 0": "too_old", "ancient b 1": "too_old"},
                        True),
    "line_too_long": (400, {"x" * (256 * 1024 + 10): "line_too_long"}, True),
    "too_many_labels": (400, {"many labels": "invalid_labels"}, True),
    "invalid_label_name": (400, {"bad label": "invalid_labels"}, True),
    "structured_metadata_too_large": (400, {"big metadata": "structured_metadata"}, True),
    # the distributor's too-old error is hidden behind the ingester's: only what is sure, resend the rest
    "too_old_and_too_far_behind": (400, {"behind": "too_far_behind"}, False),
    "too_new": (400, {"future": "too_new"}, True),
    "rate_limited": (429, {}, False),
}


def _entries(request: dict[str, Any]) -> list[Entry]:
    """The recorded request as the sink's Entries, in the order sent."""
    entries: list[Entry] = []
    for stream in request["streams"]:
        labels = StreamLabels(dict(stream["stream"]))
        for ts, line, *metadata in stream["values"]:
            text = expand(line)
            meta = {k: expand(v) for k, v in (metadata[0] if metadata else {}).items()}
            entries.append(Entry(len(entries), labels, int(ts), text, meta, len(text), len(text.encode())))
    return entries


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_answer_is_read_right(name: str) -> None:
    recorded = load(name)
    status, refused_lines, settled = EXPECTED[name]
    assert recorded["status"] == status
    if status != 400:
        return
    entries = _entries(recorded["request"])
    verdict = rejections.read_refusal(recorded["body"], entries)
    assert {entries[i].line: reason for i, reason in verdict.refused.items()} == refused_lines
    assert verdict.settled is settled


def test_every_scenario_has_a_fixture_and_an_expectation() -> None:
    assert set(EXPECTED) == set(BY_NAME)
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "loki" / "push"
    assert {path.stem for path in fixtures.glob("*.json")} == set(BY_NAME)


# -- the mock answers in the recorded formats --------------------------------------------------

MOCK_LIMITS: dict[str, dict[str, Any]] = {
    "too_far_behind_listed": {"max_behind_ns": H},
    "too_far_behind_hidden": {"max_behind_ns": H},
    "too_far_behind_last_stream": {"max_behind_ns": H},
    "too_old": {"reject_older_than_ns": "cutoff"},
    "too_old_streams": {"reject_older_than_ns": "cutoff"},
    "line_too_long": {"max_line_bytes": 256 * 1024},
    "too_many_labels": {"max_label_names": 15},
    "too_old_and_too_far_behind": {"max_behind_ns": H, "reject_older_than_ns": "cutoff"},
}


@pytest.mark.parametrize("name", sorted(MOCK_LIMITS))
def test_mock_answers_in_the_recorded_format(name: str) -> None:
    recorded = load(name)
    limits = dict(MOCK_LIMITS[name])
    if limits.get("reject_older_than_ns") == "cutoff":
        limits["reject_older_than_ns"] = recorded["now_ns"] - 168 * H
    mock = LokiMock(**limits)
    scenario = BY_NAME[name]

    def label(stream: str) -> dict[str, str]:
        rid = recorded["run_id"]
        return {"source": "recorder", "service_name": "recorder", "run_id": rid, "stream": stream}

    stage, streams = scenario.build(label, recorded["now_ns"])
    for earlier in stage:
        assert mock.handler(json_push_request(earlier)).status_code == 204
    answer = mock.handler(json_push_request(streams))
    assert answer.status_code == recorded["status"]
    assert shape(answer.text) == recorded["shape"]


def test_mock_rate_limit_message_has_the_recorded_shape() -> None:
    assert shape(rate_limited_message("fake", 1048, 50, 11190)) == load("rate_limited")["shape"]


# -- re-recorded against the real Loki -----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_rate_loki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealLoki]:
    """A second Loki, with an ingestion rate so small that a push of a few kB is a 429."""
    yield from own_loki(tmp_path_factory, "tiny-rate-loki", TINY_RATE_FLAGS)


def _compare(scenario: Scenario, loki: RealLoki) -> None:
    recorded = load(scenario.name)
    fresh = record(scenario, loki)
    assert (fresh["status"], fresh["shape"]) == (recorded["status"], recorded["shape"]), (
        f"Loki's answer to {scenario.name!r} changed; re-record with `python -m tests.loki.push_answers` "
        f"and check shipper/sinks/loki/rejections.py:\n{fresh['body']}"
    )
    if fresh["status"] == 400:  # the parser reads today's answer as it reads the recorded one
        entries = _entries(fresh["request"])
        verdict = rejections.read_refusal(fresh["body"], entries)
        assert {entries[i].line: r for i, r in verdict.refused.items()} == EXPECTED[scenario.name][1]


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS if not s.tiny_rate])
def test_real_loki_still_answers_as_recorded(real_loki: RealLoki, name: str) -> None:
    _compare(BY_NAME[name], real_loki)


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS if s.tiny_rate])
def test_real_loki_rate_limit_answer_as_recorded(tiny_rate_loki: RealLoki, name: str) -> None:
    _compare(BY_NAME[name], tiny_rate_loki)
