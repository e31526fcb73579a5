"""Where a Loki answer is shaped: inline when small, in a worker thread when big. Deciding must not
cost a pass over a big answer (a 1,000-line page paid ~0.5 ms just to be counted, issue 16)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.services.offload import INLINE_MAX_CHARS, INLINE_MAX_ITEMS, loki_text_size


class Untouchable(dict[str, Any]):
    """A stream the count must never look at: reading it fails the test."""

    def get(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the count read a stream after the answer was known to be big")


def streams(*values_per_stream: list[list[Any]]) -> dict[str, Any]:
    return {"resultType": "streams",
            "result": [{"stream": {"app": "a"}, "values": values} for values in values_per_stream]}


def test_a_small_answer_is_counted_exactly() -> None:
    data = streams([["1", "abc"], ["2", "de", {"k": "vv"}]], [["3", "f"]])
    assert loki_text_size(data) == (3, 1 + 3 + 2 + 2 + 1 + 1)  # label value "a" once per stream


def test_metric_series_count_as_items() -> None:
    data = {"resultType": "matrix", "result": [{"metric": {"job": "xy"}, "values": [[1, "2"]]}]}
    assert loki_text_size(data) == (1, 2)


@pytest.mark.parametrize("first", [
    [["1", "x"]] * (INLINE_MAX_ITEMS + 1),          # too many entries
    [["1", "x" * (INLINE_MAX_CHARS + 1)]],           # too much text
])
def test_counting_stops_once_the_answer_is_big(first: list[list[Any]]) -> None:
    data = streams(first)
    data["result"].append(Untouchable())
    items, chars = loki_text_size(data)
    assert items > INLINE_MAX_ITEMS or chars > INLINE_MAX_CHARS  # still sent to a worker thread
