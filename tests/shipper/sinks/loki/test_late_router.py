"""LateRouter.route: an entry goes to its late stream exactly when its live stream holds something
newer than the entry by more than the window - checked entry by entry against that rule, with
and without the quick answer for pushes that are all recent enough."""

from __future__ import annotations

import random

import pytest

from shipper.sinks.loki import late
from shipper.sinks.loki.encode import Entry, StreamLabels
from shipper.sinks.loki.late import LATE_LABEL, LateRouter

HOUR_NS = 3600 * 1_000_000_000
BASE_NS = 1_764_979_200 * 1_000_000_000
STREAMS = [StreamLabels({"source": "gcs", "level": level}) for level in ("info", "warn", "error")]


def entries(stamps: list[tuple[int, int]]) -> list[Entry]:
    return [Entry(index, STREAMS[stream], ts, f"line {index}", {}, 10, 6)
            for index, (stream, ts) in enumerate(stamps)]


@pytest.mark.parametrize("seed", range(40))
def test_route_moves_exactly_the_entries_their_live_stream_would_refuse(seed: int) -> None:
    rng = random.Random(seed)
    router = LateRouter()
    held: dict[str, int] = {}
    for stream in rng.sample(range(len(STREAMS)), rng.randint(0, len(STREAMS))):
        ts = BASE_NS + rng.randint(0, 6 * HOUR_NS)
        router.acknowledged(entries([(stream, ts)]))
        held[STREAMS[stream].label_string] = ts
    offered = entries(sorted(((rng.randrange(len(STREAMS)), BASE_NS + rng.randint(0, 6 * HOUR_NS))
                              for _ in range(50)), key=lambda pair: pair[1]))
    expected = [entry.stream.label_string in held and entry.ts_ns < held[entry.stream.label_string] - HOUR_NS
                for entry in offered]

    moved = router.route(offered)

    assert moved == sum(expected)
    assert [LATE_LABEL in entry.stream.labels for entry in offered] == expected


def test_entries_within_the_window_of_every_stream_stay_live() -> None:
    router = LateRouter()
    router.acknowledged(entries([(0, BASE_NS + 2 * HOUR_NS)]))
    recent = entries([(1, BASE_NS), (0, BASE_NS + HOUR_NS), (2, BASE_NS + 3 * HOUR_NS)])
    assert router.route(recent) == 0  # stream 1 holds nothing; stream 0's entry is just inside
    assert all(LATE_LABEL not in entry.stream.labels for entry in recent)


def test_a_refusal_teaches_the_router_even_for_a_stream_it_had_not_seen() -> None:
    router = LateRouter()
    refused = entries([(1, BASE_NS)])[0]
    router.refused_too_far_behind(refused)
    assert LATE_LABEL in refused.stream.labels
    again = entries([(1, BASE_NS - 1)])
    assert router.route(again) == 1


def test_late_entries_stay_late_when_the_router_forgets_its_late_streams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At _MAX_STREAMS the router forgets the late streams it made; an entry already routed to
    one must still be sent as late (together with the other late streams, after asking Loki what
    it holds) and never as a live stream of its own."""
    monkeypatch.setattr(late, "_MAX_STREAMS", 1)
    router = LateRouter()
    router.acknowledged(entries([(0, BASE_NS + 5 * HOUR_NS)]))
    offered = entries([(0, BASE_NS), (0, BASE_NS + HOUR_NS), (1, BASE_NS)])
    assert router.route(offered) == 2  # two hours: making the second late stream forgot the first
    moved, live = offered[:2], offered[2:]
    assert all(router.is_late(entry.stream) and router.live_of(entry.stream) is STREAMS[0] for entry in moved)
    assert router.split(offered) == (live, moved)
    assert sorted(map(len, router.requests(offered))) == [1, 2]  # live alone, the late ones together
    router.acknowledged(moved)  # late streams teach nothing about their live stream
    assert router.route(entries([(0, BASE_NS + 4 * HOUR_NS)])) == 0
