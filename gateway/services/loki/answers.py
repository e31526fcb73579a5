"""Reading Loki's `streams` answers: their entries merged in the query's direction, counted, and
each entry's structured metadata and parsed labels flattened; and checking a metric answer's
series."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.metrics import UPSTREAM_ERRORS
from gateway.services.boundary import label_key
from gateway.services.loki.errors import UPSTREAM, LokiUpstreamError

METADATA_CATEGORIES = ("structuredMetadata", "parsed")
MAX_TIMESTAMP_NS = 253_402_300_799_999_999_999  # 9999-12-31T23:59:59.999999999Z: what RFC 3339 can write

Entry = tuple[int, dict[str, str], str, dict[str, str] | None]  # ts_ns, labels, line, metadata


def sorted_entries(data: Mapping[str, Any], *, forward: bool) -> list[Entry]:
    """All entries of a `streams` result, merged across streams in the query's direction (ties
    broken by labels then line, so the order is deterministic)."""
    if data.get("resultType") != "streams":
        raise LokiUpstreamError(f"expected a log (streams) result, got {data.get('resultType')!r}")
    keyed: list[tuple[int, str, str, int, Entry]] = []
    try:
        for stream in data.get("result") or []:
            labels = stream.get("stream") or {}
            if not all(isinstance(v, str) for v in labels.values()):
                raise TypeError("label values must be strings")
            key = label_key(labels)
            for value in stream.get("values") or []:
                ts, line = int(value[0]), value[1]
                if not 0 <= ts <= MAX_TIMESTAMP_NS:
                    raise ValueError(f"timestamp {ts} is not between 1970 and 9999")
                meta = entry_metadata(value)
                if not isinstance(line, str):
                    raise TypeError("a log line must be a string")
                # the running index keeps the native tuple sort away from comparing the entries
                keyed.append((ts, key, line, len(keyed), (ts, labels, line, meta)))
    except (TypeError, ValueError, IndexError, KeyError, AttributeError) as exc:
        UPSTREAM_ERRORS.labels(UPSTREAM, "invalid_response").inc()
        raise LokiUpstreamError(f"Loki answered with a malformed streams result: {exc}") from exc
    keyed.sort(reverse=not forward)
    return [k[4] for k in keyed]


def metric_series(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The series of a metric (vector or matrix) result, each an object whose labels are strings."""
    result = data.get("result") or []
    if not isinstance(result, list) or not all(
        isinstance(series, dict) and isinstance(series.get("metric", {}), dict)
        and all(isinstance(value, str) for value in series.get("metric", {}).values())
        for series in result
    ):
        UPSTREAM_ERRORS.labels(UPSTREAM, "invalid_response").inc()
        raise LokiUpstreamError("Loki answered with a malformed metric result (series labels are strings)")
    return result


def count_entries(data: Mapping[str, Any]) -> int:
    """How many entries a `streams` result holds (0 for anything malformed)."""
    try:
        return sum(len(stream.get("values") or ()) for stream in data.get("result") or ())
    except (TypeError, AttributeError):
        return 0


def entry_metadata(value: Sequence[Any]) -> dict[str, str] | None:
    """An entry's structured metadata and parsed labels as one flat object (None when it has
    neither), from the third element of a categorized-labels answer. Loki already renames a
    parsed label that collides with a stream label or a metadata name (`level_extracted`), so
    the two never overwrite each other. TypeError when the element is not of that form."""
    if len(value) < 3:
        return None
    categories = value[2]
    if not isinstance(categories, dict):
        raise TypeError("an entry's third element must be an object of label categories")
    if not categories:  # what Loki sends for most entries: `{}`
        return None
    flat: dict[str, str] = {}
    # known categories first; one a later Loki may add is kept too, never dropped
    names = [*METADATA_CATEGORIES, *(name for name in categories if name not in METADATA_CATEGORIES)]
    for name in names:
        fields = categories.get(name)
        if fields is None:
            continue
        if not _is_str_map(fields):
            raise TypeError(f"an entry's {name!r} must be an object of strings")
        for key, text in fields.items():
            flat.setdefault(key, text)
    return flat or None


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
