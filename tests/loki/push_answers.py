"""Loki's answers to pushes it (partly) refuses, recorded from the real binary.

Each scenario pushes to a real Loki (JSON push, the labels made unique by a run id) and keeps
the request, the status and the body. `python -m tests.loki.push_answers` (with LOKI_BINARY set)
starts two Lokis - the project's config, and one with a tiny ingestion rate for the 429 - and
rewrites tests/fixtures/loki/push/*.json. tests/loki/test_recorded_push_answers.py records again
and compares the *shape* of each answer (`shape()`: numbers, times and label strings replaced),
so a Loki upgrade that changes a message shows up as a failing test, and the shipper's parser
(shipper/sinks/loki/rejections.py) and the HTTP mock (tests/loki_mock.py) are tested on these
recorded bodies.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.real_loki import LOKI_VERSION, RealLoki, find_loki_binary, run_id, start_loki

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "loki" / "push"
H = 3600 * 1_000_000_000
DAY = 24 * H
# The 429 scenario's Loki: a rate this small refuses any push of a few kB as a whole.
TINY_RATE_FLAGS = ("-distributor.ingestion-rate-limit-mb=0.001", "-distributor.ingestion-burst-size-mb=0.001")

Values = list[list[Any]]  # [[ts_ns as str, line] or [ts_ns, line, {structured metadata}]]
Streams = list[dict[str, Any]]  # [{"stream": labels, "values": Values}]
Spec = tuple[int, str] | tuple[int, str, dict[str, str]]  # (ts_ns, line[, metadata])
Label = Callable[[str], dict[str, str]]  # a stream's name -> its labels in this recording


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    # (labels of this recording, now) -> (pushes made first to set the stage, the recorded push)
    build: Callable[[Label, int], tuple[list[Streams], Streams]]
    tiny_rate: bool = False


def _values(*entries: Spec) -> Values:
    return [[str(entry[0]), *entry[1:]] for entry in entries]


def _stream(labels: dict[str, str], *entries: Spec) -> dict[str, Any]:
    return {"stream": labels, "values": _values(*entries)}


def _far_behind_listed(label: Label, now: int) -> tuple[list[Streams], Streams]:
    a = label("a")
    old = [(now - 2 * H + i, f"old {i}") for i in range(12)]
    return [[_stream(a, (now, "newest"))]], [_stream(a, *old, (now + 1, "new"))]


def _far_behind_hidden(label: Label, now: int) -> tuple[list[Streams], Streams]:
    a, b = label("a"), label("b")
    return [[_stream(a, (now, "newest"))]], [
        _stream(a, *[(now - 3 * H + i, f"behind {i}") for i in range(3)]),
        _stream(b, (now, "fine")),
    ]


def _far_behind_last_stream(label: Label, now: int) -> tuple[list[Streams], Streams]:
    a, b = label("a"), label("b")
    return [[_stream(a, (now, "newest"))]], [
        _stream(b, (now, "fine")),
        _stream(a, *[(now - 3 * H + i, f"behind {i}") for i in range(3)], (now + 1, "new")),
    ]


def _too_old(label: Label, now: int) -> tuple[list[Streams], Streams]:
    a = label("a")
    return [], [_stream(a, (now - 8 * DAY, "ancient 0"), (now - 8 * DAY + 1, "ancient 1"), (now, "fine"))]


def _too_old_streams(label: Label, now: int) -> tuple[list[Streams], Streams]:
    a, b = label("a"), label("b")
    return [], [
        _stream(a, (now - 8 * DAY, "ancient a"), (now, "fine a")),
        _stream(b, (now - 9 * DAY, "ancient b 0"), (now - 9 * DAY + 5 * 10**9, "ancient b 1"),
                (now, "fine b")),
    ]


def _line_too_long(label: Label, now: int) -> tuple[list[Streams], Streams]:
    a = label("a")
    return [], [_stream(a, (now, "x" * (256 * 1024 + 10)), (now + 1, "fine"))]


def _too_many_labels(label: Label, now: int) -> tuple[list[Streams], Streams]:
    many = {**label("a"), **{f"extra{i:02d}": "v" for i in range(16)}}
    return [], [_stream(many, (now, "many labels")), _stream(label("b"), (now, "fine"))]


def _invalid_label_name(label: Label, now: int) -> tuple[list[Streams], Streams]:
    return [], [_stream({**label("a"), "bad-name": "v"}, (now, "bad label"))]


def _metadata_too_large(label: Label, now: int) -> tuple[list[Streams], Streams]:
    a = label("a")
    return [], [_stream(a, (now, "big metadata", {"big": "y" * 70_000}), (now + 1, "fine", {"doc_id": "d1"}))]


def _too_old_and_behind(label: Label, now: int) -> tuple[list[Streams], Streams]:
    a = label("a")
    return [[_stream(a, (now, "newest"))]], [
        _stream(a, (now - 8 * DAY, "ancient"), (now - 3 * H, "behind"), (now + 1, "new")),
    ]


def _too_new(label: Label, now: int) -> tuple[list[Streams], Streams]:
    a = label("a")
    return [], [_stream(a, (now + 2 * H, "future"), (now, "fine"))]


def _rate_limited(label: Label, now: int) -> tuple[list[Streams], Streams]:
    a = label("a")
    return [], [_stream(a, *[(now + i, f"line {i} " + "z" * 200) for i in range(50)])]


SCENARIOS = (
    Scenario("too_far_behind_listed", "12 entries over 1 h behind the stream's newest and one new one, "
             "one stream: Loki lists 10, then 'total ignored: 12 out of 13'", _far_behind_listed),
    Scenario("too_far_behind_hidden", "entries too far behind in the first stream, the last stream "
             "fine: Loki answers 204 although it stored nothing of the first stream", _far_behind_hidden),
    Scenario("too_far_behind_last_stream", "the same refusal in the last stream of the push: 400 naming "
             "that stream only", _far_behind_last_stream),
    Scenario("too_old", "two entries older than reject_old_samples_max_age (printed to the second, so "
             "grouped: '2 errors like:') and a valid one", _too_old),
    Scenario("too_old_streams", "too old entries in two streams: distinct messages, each counted, "
             "joined by '; '", _too_old_streams),
    Scenario("line_too_long", "a line over max_line_size and a valid one", _line_too_long),
    Scenario("too_many_labels", "a stream with more than max_label_names_per_series labels, and a "
             "valid stream", _too_many_labels),
    Scenario("invalid_label_name", "a label name Loki cannot parse", _invalid_label_name),
    Scenario("structured_metadata_too_large", "an entry whose structured metadata is over "
             "max_structured_metadata_size, and a valid one", _metadata_too_large),
    Scenario("too_old_and_too_far_behind", "a too old entry (distributor) and one too far behind "
             "(ingester) in one push: only the ingester's error is answered, counting what reached it",
             _too_old_and_behind),
    Scenario("too_new", "an entry beyond the creation grace period, and a valid one", _too_new),
    Scenario("rate_limited", "a push over the tenant's ingestion rate (a Loki started with a tiny "
             "rate): 429, nothing stored", _rate_limited, tiny_rate=True),
)


def record(scenario: Scenario, loki: RealLoki) -> dict[str, Any]:
    """Push the scenario to `loki` and return the answer with the request it answers."""
    rid = run_id("rec")
    now = time.time_ns()

    def label(stream: str) -> dict[str, str]:
        return {"source": "recorder", "service_name": "recorder", "run_id": rid, "stream": stream}

    stage, streams = scenario.build(label, now)
    for earlier in stage:
        loki.push_raw({"streams": earlier}).raise_for_status()
    response = loki.push_raw({"streams": streams})
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "loki_version": LOKI_VERSION,
        "now_ns": now,
        "run_id": rid,
        "request": {"streams": _shortened(streams)},
        "status": response.status_code,
        "retry_after": response.headers.get("Retry-After"),
        "body": response.text,
        "shape": shape(response.text),
    }


def _shortened(streams: Streams) -> Streams:
    """Long lines and metadata values are kept as their length only (`"<x * 262154>"`)."""
    out = []
    for stream in streams:
        values = []
        for ts, line, *metadata in stream["values"]:
            meta = [{k: _short(v) for k, v in m.items()} for m in metadata]
            values.append([ts, _short(line), *meta])
        out.append({"stream": stream["stream"], "values": values})
    return out


def _short(text: str) -> str:
    return f"<{text[0]} * {len(text)}>" if len(text) > 1000 and len(set(text)) == 1 else text


def expand(text: str) -> str:
    """The inverse of _short."""
    match = re.fullmatch(r"<(.) \* (\d+)>", text)
    return match.group(1) * int(match.group(2)) if match else text


_SHAPES = (
    (re.compile(r"\{[^{}']*\}"), "{LABELS}"),
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? \+0000 UTC"), "<GO_TIME>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z"), "<RFC_TIME>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<N>"),
)


def shape(body: str) -> str:
    """The body with label strings, times and numbers replaced; repeated lines collapsed."""
    for pattern, replacement in _SHAPES:
        body = pattern.sub(replacement, body)
    lines: list[str] = []
    for line in body.splitlines():
        if not lines or lines[-1] != line:
            lines.append(line)
    return "\n".join(lines) + ("\n" if body.endswith("\n") else "")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def main() -> int:
    binary = find_loki_binary()
    if binary is None:
        print("set LOKI_BINARY", file=sys.stderr)
        return 2
    import tempfile

    FIXTURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for tiny in (False, True):
            loki = start_loki(binary, Path(tmp) / ("tiny" if tiny else "default"),
                              extra_flags=TINY_RATE_FLAGS if tiny else ())
            try:
                for scenario in SCENARIOS:
                    if scenario.tiny_rate == tiny:
                        answer = record(scenario, loki)
                        path = FIXTURES / f"{scenario.name}.json"
                        path.write_text(json.dumps(answer, indent=1, ensure_ascii=False) + "\n")
                        print(f"{path.name}: {answer['status']}")
            finally:
                loki.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
