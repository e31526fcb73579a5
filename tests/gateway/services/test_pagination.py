"""shape_page (the page builder of the log endpoints) against the general path it shortcuts:
sorted_entries -> cut_page -> render_streams must give the very same answer, cursor included,
for Loki answers of the usual form (fast path) and for unusual ones (general path)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from gateway.errors import as_api_error
from gateway.services.loki import sorted_entries
from gateway.services.pagination import (
    Cursor,
    cut_page,
    plan_page,
    query_digest,
    render_streams,
    shape_page,
)
from gateway.services.pagination.usual import shape_usual_page
from gateway.services.times import format_ns
from tests.gateway.loki_answers import load_answer

BASE_NS = 1_700_000_000 * 1_000_000_000
DIGEST = query_digest('{source="gcs"}', "backward", None)
WINDOW = (BASE_NS - 10**12, BASE_NS + 10**12)

Pool = list[tuple[dict[str, str], int, str, dict[str, str] | None]]


def reference(data: dict[str, Any], plan: Any, limit: int, direction: str) -> tuple[Any, ...]:
    entries = sorted_entries(data, forward=direction == "forward")
    page = cut_page(entries, request=plan, limit=limit, direction=direction, digest=DIGEST)
    streams = render_streams(page.entries, redact_lines=True)
    return streams, page.truncated, page.next_cursor, len(page.entries)


def shaped(data: dict[str, Any], plan: Any, limit: int, direction: str) -> tuple[Any, ...]:
    page = shape_page(data, request=plan, limit=limit, direction=direction, digest=DIGEST, redact_lines=True)
    return page.streams, page.truncated, page.next_cursor, page.returned


def loki_answer(pool: Pool, start: int, end: int, limit: int, direction: str, rng: random.Random) -> Any:
    """What Loki answers: entries in [start, end), the first `limit` in the direction, grouped
    into streams, each stream ordered in the direction; no order among equal timestamps. Some
    label sets come as two streams (the general path keeps them apart, and so must we)."""
    chosen = [e for e in pool if start <= e[1] < end]
    keyed = [(e[1], rng.random(), e) for e in chosen]
    keyed.sort(key=lambda k: k[:2], reverse=direction == "backward")
    streams: dict[tuple[tuple[str, str], ...], list[list[Any]]] = {}
    for _, _, (labels, ts, line, meta) in keyed[:limit]:
        # Loki's categorized-labels form: every entry has a third element, {} when it has no metadata
        value: list[Any] = [str(ts), line, {"structuredMetadata": meta} if meta else {}]
        streams.setdefault(tuple(sorted(labels.items())), []).append(value)
    result = []
    for labels, values in streams.items():
        halves: list[list[list[Any]]] = [[], []]
        split = rng.random() < 0.3  # now and then two streams with one label set, as in a merge
        for value in values:
            halves[split and rng.random() < 0.5].append(value)
        result += [{"stream": dict(labels), "values": half} for half in halves if half]
    rng.shuffle(result)
    return {"resultType": "streams", "result": result, "stats": {}}


def make_pool(rng: random.Random, n: int, streams: int, spread: int, secret_every: int) -> Pool:
    """Entries with distinct timestamps within a stream (Loki's usual case) that often collide
    across streams (spread small), some lines with secrets, some with metadata."""
    pool: Pool = []
    for s in range(streams):
        labels = {"source": "gcs", "service_name": f"svc{s}", "level": rng.choice(["info", "error"])}
        for ts in rng.sample(range(spread), min(n, spread)):
            line = f"entry {s}/{ts}" + (" password=hunter2" if rng.randrange(secret_every) == 0 else "")
            meta = {"doc_id": f"token=abcdefgh{ts}"} if rng.randrange(7) == 0 else None
            pool.append((labels, BASE_NS + ts * 250_000_000, line, meta))
    return pool


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_walking_pages_matches_the_general_path_and_returns_everything_once(
    seed: int, direction: str
) -> None:
    rng = random.Random(seed)
    pool = make_pool(rng, n=rng.randrange(1, 60), streams=rng.randrange(1, 5), spread=80, secret_every=9)
    limit = rng.choice([1, 2, 3, 7, 25, 1000])
    got: list[tuple[str, str, str]] = []
    cursor_text: str | None = None
    fast_pages = 0
    for _ in range(len(pool) + 2):
        cursor = Cursor.decode(cursor_text, DIGEST) if cursor_text else None
        plan = plan_page(
            start_ns=WINDOW[0], end_ns=WINDOW[1], limit=limit, direction=direction, cursor=cursor
        )
        data = loki_answer(pool, plan.start_ns, plan.end_ns, plan.loki_limit, direction, rng)
        expected = reference(data, plan, limit, direction)
        assert shaped(data, plan, limit, direction) == expected
        usual = shape_usual_page(data, plan, limit, direction, DIGEST, True)
        if usual is not None:
            fast_pages += 1
            assert (usual.streams, usual.truncated, usual.next_cursor, usual.returned) == expected
        streams, truncated, cursor_text, returned = expected
        assert returned <= limit
        got += [(e[0], s["labels"]["service_name"], e[1]) for s in streams for e in s["entries"]]
        if not truncated:
            break
    assert len(got) == len(pool) == len(set(got))
    assert fast_pages > 0


def usual_answer(direction: str) -> dict[str, Any]:
    values = [[str(BASE_NS + i), f"line {i}"] for i in range(5)]
    if direction == "backward":
        values.reverse()
    return {"resultType": "streams", "result": [{"stream": {"a": "b"}, "values": values}]}


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_usual_answers_take_the_fast_path(direction: str) -> None:
    plan = plan_page(start_ns=WINDOW[0], end_ns=WINDOW[1], limit=3, direction=direction, cursor=None)
    page = shape_usual_page(usual_answer(direction), plan, 3, direction, DIGEST, True)
    assert page is not None
    assert page.truncated and page.next_cursor and page.returned == 3


def unusual(direction: str, change: str) -> dict[str, Any]:
    data = usual_answer(direction)
    values = data["result"][0]["values"]
    if change == "tie_in_stream":
        values[1][0] = values[2][0]
    elif change == "unordered":
        values[0], values[1] = values[1], values[0]
    elif change == "short_timestamp":
        values[0][0] = "12345"
    elif change == "signed_timestamp":
        values[0][0] = "+" + values[0][0][1:]
    elif change == "mixed_widths":
        values[0][0] = "0" + values[0][0]
    elif change == "number_timestamp":
        values[0][0] = int(values[0][0])
    elif change == "tie_at_cut":
        data["result"].append({"stream": {"a": "c"}, "values": [list(values[2])]})
    return data


@pytest.mark.parametrize("direction", ["backward", "forward"])
@pytest.mark.parametrize(
    "change",
    [
        "tie_in_stream",
        "unordered",
        "short_timestamp",
        "signed_timestamp",
        "mixed_widths",
        "number_timestamp",
        "tie_at_cut",
    ],
)
def test_unusual_answers_take_the_general_path_with_the_same_result(direction: str, change: str) -> None:
    data = unusual(direction, change)
    plan = plan_page(start_ns=WINDOW[0], end_ns=WINDOW[1], limit=3, direction=direction, cursor=None)
    assert shape_usual_page(data, plan, 3, direction, DIGEST, True) is None
    if change == "number_timestamp":
        return  # the general path reads it as is; only the string form is Loki's
    assert shaped(data, plan, 3, direction) == reference(data, plan, 3, direction)


def test_malformed_answers_fail_as_before() -> None:
    plan = plan_page(start_ns=WINDOW[0], end_ns=WINDOW[1], limit=3, direction="forward", cursor=None)
    for data in (
        {"resultType": "matrix", "result": []},
        {"resultType": "streams", "result": [{"stream": {}, "values": [["x"]]}]},
        {"resultType": "streams", "result": [{"stream": {}, "values": [["abc", "line"]]}]},
    ):
        with pytest.raises(Exception) as from_reference:
            reference(data, plan, 3, "forward")
        with pytest.raises(type(from_reference.value)):
            shaped(data, plan, 3, "forward")


def test_redaction_and_metadata_on_the_fast_path() -> None:
    data = {
        "resultType": "streams",
        "result": [
            {
                "stream": {"source": "pod"},
                "values": [
                    [
                        str(BASE_NS + 2),
                        "Authorization: Bearer abcdefghijklmnop",
                        {"structuredMetadata": {"doc_id": "password=x1"}, "parsed": {"user": "bob"}},
                    ],
                    [str(BASE_NS + 1), "plain", {}],
                ],
            }
        ],
    }
    plan = plan_page(start_ns=WINDOW[0], end_ns=WINDOW[1], limit=10, direction="backward", cursor=None)
    page = shape_usual_page(data, plan, 10, "backward", DIGEST, True)
    assert page is not None
    assert page.streams == [
        {
            "labels": {"source": "pod"},
            "entries": [
                [
                    "2023-11-14T22:13:20.000000002Z",
                    "Authorization: Bearer [REDACTED]",
                    {"doc_id": "password=[REDACTED]", "user": "bob"},
                ],
                ["2023-11-14T22:13:20.000000001Z", "plain"],
            ],
        }
    ]
    plain = shape_usual_page(data, plan, 10, "backward", DIGEST, False)
    assert plain is not None
    assert plain.streams[0]["entries"][0][1:] == [
        "Authorization: Bearer abcdefghijklmnop",
        {"doc_id": "password=x1", "user": "bob"},
    ]


@pytest.mark.parametrize("direction", ["backward", "forward"])
@pytest.mark.parametrize(("line_a", "line_b"), [("b", "a"), ("a", "b"), ("same", "same")])
def test_streams_with_one_label_set_are_ordered_like_the_general_path(
    direction: str, line_a: str, line_b: str
) -> None:
    """Streams come in the order of their first entries, ties broken by labels, line, position."""
    step = -1 if direction == "backward" else 1
    first = BASE_NS + 10
    data = {
        "resultType": "streams",
        "result": [
            {"stream": {"a": "1"}, "values": [[str(first), line_a], [str(first + step), "a2"]]},
            {"stream": {"a": "1"}, "values": [[str(first), line_b], [str(first + 2 * step), "b2"]]},
            {"stream": {"a": "0"}, "values": [[str(first + step), "c"]]},
        ],
    }
    plan = plan_page(start_ns=WINDOW[0], end_ns=WINDOW[1], limit=10, direction=direction, cursor=None)
    page = shape_usual_page(data, plan, 10, direction, DIGEST, True)
    assert page is not None
    assert (page.streams, page.truncated, page.next_cursor, page.returned) == reference(
        data, plan, 10, direction
    )


@pytest.mark.parametrize("limit", [1, 10])  # 1: the general path (cut inside a timestamp tie)
def test_parsed_labels_and_metadata_are_redacted_on_both_paths(limit: int) -> None:
    # `| json` turns a line's fields into stream labels: those reach the answer as labels
    labels = {"source": "gcs", "api_key": "abc123", "url": "https://u:hunter2@db.example/x"}
    data = {
        "resultType": "streams",
        "result": [
            {
                "stream": labels,
                "values": [
                    [
                        str(BASE_NS),
                        "a",
                        {"structuredMetadata": {"password": "pw1"}, "parsed": {"token": "t0k3n"}},
                    ],
                    [str(BASE_NS), "b", {}],
                ],
            },
        ],
    }
    plan = plan_page(start_ns=WINDOW[0], end_ns=WINDOW[1], limit=limit, direction="backward", cursor=None)
    page = shape_page(data, request=plan, limit=limit, direction="backward", digest=DIGEST, redact_lines=True)
    text = repr(page.streams)
    assert "abc123" not in text and "hunter2" not in text and "pw1" not in text and "t0k3n" not in text
    metadata = [entry[2:] for stream in page.streams for entry in stream["entries"] if entry[1] == "a"]
    assert metadata == ([[{"password": "[REDACTED]", "token": "[REDACTED]"}]] if limit > 1 else [])
    assert page.streams[0]["labels"]["source"] == "gcs"


@pytest.mark.parametrize(
    "data",
    [
        {"resultType": "streams", "result": [{"stream": {}, "values": [[str(BASE_NS), 5]]}]},
        {"resultType": "streams", "result": [{"stream": {"a": 1}, "values": [[str(BASE_NS), "x"]]}]},
        {"resultType": "streams", "result": [{"stream": {}, "values": [[str(BASE_NS), "x", ["m"]]]}]},
        # metadata flat instead of categorized: real Loki never sends it
        {"resultType": "streams", "result": [{"stream": {}, "values": [[str(BASE_NS), "x", {"a": "b"}]]}]},
        {
            "resultType": "streams",
            "result": [{"stream": {}, "values": [[str(BASE_NS), "x", {"structuredMetadata": {"a": 1}}]]}],
        },
        {"resultType": "streams", "result": ["not a stream"]},
        {"resultType": "streams", "result": [{"stream": {}, "values": [["abc", "x"]]}]},
    ],
)
def test_malformed_streams_are_an_upstream_error(data: dict[str, Any]) -> None:
    from gateway.services.loki import LokiUpstreamError

    plan = plan_page(start_ns=WINDOW[0], end_ns=WINDOW[1], limit=3, direction="forward", cursor=None)
    with pytest.raises(LokiUpstreamError) as err:
        shape_page(data, request=plan, limit=3, direction="forward", digest=DIGEST, redact_lines=True)
    assert as_api_error(err.value).status == 502


@pytest.mark.parametrize(
    ("first", "count"),
    [
        (1, 9),  # ten-digit timestamps: no digits before the tens of seconds
        (1_700_006_390, 25),  # minutes turn
        (1_699_920_000 - 12, 25),  # a day turns
        (1_704_067_199 - 12, 25),  # 2023-12-31T23:59:59: the year turns
        (1_709_164_799 - 12, 25),  # 2024-02-28T23:59:59: then a leap day
        (4_102_444_800 - 12, 25),  # 2100-01-01
    ],
)
def test_fast_path_timestamps_equal_the_general_paths_across_boundaries(first: int, count: int) -> None:
    """The fast path formats a timestamp per ten seconds plus the last digit: every second around
    minute, day and year boundaries must read as the general path (format_ns) writes it."""
    stamps = [(first + i) * 10**9 + i * 37 for i in range(count)]
    values = [[str(ts), f"line {i}"] for i, ts in enumerate(stamps)]
    data = {"resultType": "streams", "result": [{"stream": {"a": "b"}, "values": values}]}
    plan = plan_page(start_ns=0, end_ns=stamps[-1] + 1, limit=100, direction="forward", cursor=None)
    page = shape_usual_page(data, plan, 100, "forward", DIGEST, True)
    assert page is not None
    assert [e[0] for e in page.streams[0]["entries"]] == [format_ns(ts) for ts in stamps]


@pytest.mark.parametrize("name", ["query_range_streams", "query_range_streams_parsed"])
@pytest.mark.parametrize("limit", [1, 2, 10])
def test_recorded_loki_answers_shape_alike_on_both_paths(name: str, limit: int) -> None:
    """The real Loki's categorized answer (recorded): one stream per label set, metadata (and
    parsed labels) as the third element, none where Loki sent {}; fast and general path agree."""
    data = load_answer(name).body["data"]
    plan = plan_page(start_ns=0, end_ns=2 * BASE_NS, limit=limit, direction="forward", cursor=None)
    usual = shape_usual_page(data, plan, limit, "forward", DIGEST, True)
    assert usual is not None
    assert (usual.streams, usual.truncated, usual.next_cursor, usual.returned) == reference(
        data, plan, limit, "forward"
    )
    if limit == 10:
        entries = {e[1]: e[2:] for s in usual.streams for e in s["entries"]}
        assert all("object" not in s["labels"] for s in usual.streams)
        if name == "query_range_streams":
            assert entries["plain line without metadata"] == []
            assert entries['{"msg":"order 1 filled","qty":1}'] == [
                {"generation": "17", "line_no": "1", "object": "trades/2024-01-01.jsonl"}
            ]
        else:
            assert entries['{"msg":"order 1 filled","qty":1}'][0]["msg"] == "order 1 filled"
