"""CPU-heavy work on log text (redacting and shaping a page) off the event loop, once a page is
big enough for that to matter: a worker-thread hop costs about 0.1 ms, while redacting a
1,000-line page with secrets in every line costs tens of milliseconds, and a page of 256 KB lines
more. Small answers stay inline, where the hop would cost more than it saves."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from anyio import to_thread

T = TypeVar("T")

INLINE_MAX_CHARS = 16 * 1024  # answers with less log text than this are shaped on the event loop
INLINE_MAX_ITEMS = 100


def loki_text_size(data: Mapping[str, Any]) -> tuple[int, int]:
    """(items, characters) of log text in a Loki `data` answer: entries and their lines (and
    metadata values) for a streams result; series and their label values for a metric result.
    Counting stops as soon as either is over the inline limits: the answer goes to a worker
    thread then, whatever follows (a 1,000-line page paid ~0.5 ms to count lines it shapes anyway)."""
    items = chars = 0
    for item in data.get("result") or ():
        if items > INLINE_MAX_ITEMS or chars > INLINE_MAX_CHARS:
            break
        if not isinstance(item, dict):
            continue
        labels = item.get("stream") or item.get("metric") or {}
        chars += sum(len(v) for v in labels.values() if isinstance(v, str)) if isinstance(labels, dict) else 0
        values = item.get("values") if data.get("resultType") == "streams" else None
        if not isinstance(values, list):
            items += 1
            continue
        items += len(values)
        if items > INLINE_MAX_ITEMS:
            break
        for value in values:
            if isinstance(value, list) and len(value) > 1 and isinstance(value[1], str):
                chars += len(value[1])
                if len(value) > 2 and isinstance(value[2], dict):
                    chars += sum(len(v) for v in value[2].values() if isinstance(v, str))
    return items, chars


async def run_sized(work: Callable[[], T], items: int, chars: int) -> T:
    """`work()` inline for a small answer, else in a worker thread (the event loop keeps serving)."""
    if items <= INLINE_MAX_ITEMS and chars <= INLINE_MAX_CHARS:
        return work()
    return await to_thread.run_sync(work)


async def shape_loki_answer(work: Callable[[], T], data: Mapping[str, Any]) -> T:
    """`work()` (which renders `data`), placed by the size of `data`."""
    return await run_sized(work, *loki_text_size(data))
