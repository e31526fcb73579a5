"""The quick answers for a push of one stream (encode.one_stream) give what the general loops give:
LateRouter.requests, group_streams and LokiSink._batches, on random pushes of one stream or of
several, live and late, checked against the rules written out here."""

from __future__ import annotations

import random

import httpx
import pytest

from shipper.sinks.loki import LokiSink, LokiSinkConfig
from shipper.sinks.loki.encode import Entry, StreamLabels, group_streams, one_stream
from shipper.sinks.loki.late import LateRouter

BASE_NS = 1_764_979_200 * 1_000_000_000
STREAMS = [StreamLabels({"source": "gcs", "level": level}) for level in ("info", "warn", "error")]


def random_push(rng: random.Random, router: LateRouter) -> list[Entry]:
    kinds = rng.choice([1, 1, 2, 3])  # one stream in half of them
    pushed = []
    for index in range(rng.randint(1, 60)):
        stream = STREAMS[rng.randrange(kinds)]
        entry = Entry(index, stream, BASE_NS + index, f"line {index}", {}, rng.randint(10, 300), 6)
        if rng.random() < 0.2:
            router.refused_too_far_behind(entry)  # to its late stream
        pushed.append(entry)
    return pushed


@pytest.mark.parametrize("seed", range(60))
def test_one_stream_and_the_general_loops_agree(seed: int) -> None:
    rng = random.Random(seed)
    router = LateRouter()
    entries = random_push(rng, router)
    names = {entry.stream.label_string for entry in entries}
    assert (one_stream(entries) is not None) == (len(names) == 1)

    # requests: each live stream alone, every late stream in one group, order kept
    expected_groups: dict[str, list[Entry]] = {}
    for entry in entries:
        key = "" if router.is_late(entry.stream) else entry.stream.label_string
        expected_groups.setdefault(key, []).append(entry)
    assert router.requests(entries) == list(expected_groups.values())

    # group_streams: by stream object, order kept
    expected_streams: dict[StreamLabels, list[Entry]] = {}
    for entry in entries:
        expected_streams.setdefault(entry.stream, []).append(entry)
    grouped = group_streams(entries, in_ts_order=True)
    assert grouped == expected_streams and all(group is not entries for group in grouped.values())

    # _batches: a new batch when the next entry would take it over the bytes or entries limit
    max_bytes, max_entries = rng.choice([(100_000, 1000), (2000, 1000), (100_000, 7), (500, 5)])
    with httpx.Client() as client:
        sink = LokiSink(LokiSinkConfig(url="http://loki.test", batch_max_bytes=max_bytes,
                                       batch_max_entries=max_entries), client)
        batches = list(sink._batches(entries))
    expected: list[list[Entry]] = [[]]
    for entry in entries:
        current = expected[-1]
        if current and (sum(e.size for e in current) + entry.size > max_bytes or len(current) >= max_entries):
            expected.append([])
        expected[-1].append(entry)
    assert batches == expected
    with httpx.Client() as client:
        assert list(LokiSink(LokiSinkConfig(url="http://loki.test"), client)._batches([])) == []
