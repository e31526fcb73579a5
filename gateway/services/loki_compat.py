"""Pure helpers for serving Loki's own read API: Loki's parameter formats (times, durations,
directions, limits) checked and normalised, and Loki's answer shapes redacted in place of their
lines and labels. No I/O, so all of it is table-tested.

Loki's own parsing is the bar: a time is Unix seconds (10 digits or fewer), Unix nanoseconds, float
seconds or RFC 3339; a step is a Go/Prometheus duration or float seconds; a direction is forward or
backward in any case."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.services.errors import QueryError
from gateway.services.redact import MASK, redact, redact_fields, redact_many, sensitive_name
from gateway.services.times import NS_PER_HOUR, NS_PER_SECOND, parse_duration_ns, parse_time_ns

DEFAULT_SINCE_NS = NS_PER_HOUR  # Loki's default look-back when a request gives no start/since
UNIX_SECONDS_MAX_DIGITS = 10  # Loki: an integer of up to 10 digits is seconds, longer is ns
MAX_PARAM_CHARS = 64


class LokiParamError(QueryError):
    def __init__(self, message: str, hint: str, code: str = "invalid_parameter") -> None:
        super().__init__(code, message, hint)


def loki_time_ns(name: str, text: str, now_ns: int) -> int:
    """A time as Loki reads it (see the module docstring); `now` and relative durations (2h) too."""
    text = text.strip()
    if len(text) > MAX_PARAM_CHARS:
        raise LokiParamError(f"{name} is too long", "give Unix seconds, Unix nanoseconds or RFC 3339")
    try:
        if text.isascii() and text.isdigit():
            value = int(text)
            return value * NS_PER_SECOND if len(text) <= UNIX_SECONDS_MAX_DIGITS else value
        if "." in text and "T" not in text.upper():
            seconds = float(text)
            if not math.isfinite(seconds):
                raise ValueError(text)
            return round(seconds * 1000) * 1_000_000  # Loki rounds float seconds to milliseconds
    except ValueError:
        pass
    try:
        return parse_time_ns(text, now_ns)
    except QueryError as exc:
        raise LokiParamError(
            f"invalid {name} {text!r}", "give Unix seconds, Unix nanoseconds or RFC 3339", "invalid_time"
        ) from exc


def loki_duration(name: str, text: str) -> str:
    """A step/interval/since as Loki takes it (60, 1.5, 30s, 1m30s), checked and passed on as given."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            parse_duration_ns(text)
        except QueryError as exc:
            raise LokiParamError(
                f"invalid {name} {text[:MAX_PARAM_CHARS]!r}", "give a duration such as 30s, 5m or 60"
            ) from exc
        return text
    if not (math.isfinite(seconds) and seconds > 0):
        raise LokiParamError(f"{name} must be a positive duration", "give a duration such as 30s, 5m or 60")
    return text


def duration_ns(text: str) -> int:
    try:
        return int(float(text) * NS_PER_SECOND)
    except ValueError:
        return parse_duration_ns(text)


@dataclass(frozen=True)
class Window:
    start_ns: int
    end_ns: int


def loki_window(
    *,
    start: str | None,
    end: str | None,
    since: str | None,
    now_ns: int,
    max_hours: float,
) -> Window:
    """Loki's defaults (end now, start `since` or 1 h before end) within the gateway's range limit."""
    end_ns = loki_time_ns("end", end, now_ns) if end else now_ns
    if start:
        start_ns = loki_time_ns("start", start, now_ns)
    else:
        back = duration_ns(loki_duration("since", since)) if since else DEFAULT_SINCE_NS
        start_ns = end_ns - back
    if start_ns > end_ns:
        raise LokiParamError("start is after end", "swap start and end", "invalid_time")
    if end_ns - start_ns > max_hours * NS_PER_HOUR:
        hours = (end_ns - start_ns) / NS_PER_HOUR
        raise LokiParamError(
            f"the time range of {hours:.1f}h exceeds the gateway's limit of {max_hours:g}h",
            f"choose a time range of at most {max_hours:g}h (QUERY_MAX_RANGE_HOURS)",
            "range_too_long",
        )
    return Window(start_ns, end_ns)


def loki_direction(text: str | None) -> str | None:
    if text is None:
        return None
    direction = text.strip().lower()
    if direction not in ("forward", "backward"):
        raise LokiParamError(f"invalid direction {text[:MAX_PARAM_CHARS]!r}", "use forward or backward")
    return direction


def loki_limit(text: str | None, maximum: int) -> int | None:
    if text is None:
        return None
    try:
        limit = int(text)
    except ValueError:
        raise LokiParamError(f"invalid limit {text[:MAX_PARAM_CHARS]!r}", "give a whole number") from None
    if limit < 0:
        raise LokiParamError("limit must not be negative", "give a whole number such as 100")
    if limit > maximum:
        raise LokiParamError(
            f"limit {limit} exceeds the gateway's maximum of {maximum}",
            f"use limit <= {maximum} (logcli: --batch {maximum} or less)",
            "limit_too_large",
        )
    return limit


# ---------------------------------------------------------------------------------------------
# redaction of Loki's answer shapes (each returns a new object; unknown shapes are a 502 upstream)


class MalformedAnswer(ValueError):
    """Loki's answer does not have the shape its API documents."""


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise MalformedAnswer("expected an object of strings")
    return value


def _redact_entry_extras(extra: Any) -> Any:
    """The third element of an entry: structured metadata (a flat object), or with categorized
    labels {"structuredMetadata": {...}, "parsed": {...}}."""
    if not isinstance(extra, dict):
        raise MalformedAnswer("an entry's third element must be an object")
    if all(isinstance(v, str) for v in extra.values()):
        return redact_fields(extra)
    return {k: redact_fields(_str_map(v)) if isinstance(v, dict) else v for k, v in extra.items()}


def redact_streams(result: Any) -> list[dict[str, Any]]:
    """A `streams` result: labels, lines and per-entry metadata redacted."""
    if not isinstance(result, list):
        raise MalformedAnswer("a streams result must be a list")
    out: list[dict[str, Any]] = []
    for stream in result:
        if not isinstance(stream, dict):
            raise MalformedAnswer("a stream must be an object")
        values = stream.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, list) and len(v) >= 2 for v in values):
            raise MalformedAnswer("a stream's values must be [ts, line, ...] lists")
        lines = [v[1] for v in values]
        if not all(isinstance(line, str) for line in lines):
            raise MalformedAnswer("a log line must be a string")
        masked = redact_many(lines)
        entries = [
            [v[0], line, *(_redact_entry_extras(x) for x in v[2:])]
            for v, line in zip(values, masked, strict=True)
        ]
        out.append(
            {**stream, "stream": redact_fields(_str_map(stream.get("stream") or {})), "values": entries}
        )
    return out


def redact_metric_series(result: Any) -> list[Any]:
    """A vector or matrix result (also index/volume): series labels redacted."""
    if not isinstance(result, list):
        raise MalformedAnswer("a metric result must be a list")
    out: list[Any] = []
    for series in result:
        if not isinstance(series, dict):
            raise MalformedAnswer("a series must be an object")
        out.append({**series, "metric": redact_fields(_str_map(series.get("metric") or {}))})
    return out


def redact_query_data(data: Any) -> Any:
    """`data` of query / query_range / index/volume(_range): streams, vector or matrix."""
    if not isinstance(data, dict):
        raise MalformedAnswer("`data` must be an object")
    result_type = data.get("resultType")
    if result_type == "streams":
        return {**data, "result": redact_streams(data.get("result") or [])}
    if result_type in ("vector", "matrix"):
        return {**data, "result": redact_metric_series(data.get("result") or [])}
    if result_type == "scalar":
        return data
    raise MalformedAnswer(f"unknown resultType {result_type!r}")


def redact_label_sets(data: Any) -> list[dict[str, str]]:
    """series: a list of label sets."""
    if not isinstance(data, list):
        raise MalformedAnswer("series `data` must be a list")
    return [redact_fields(_str_map(labels)) for labels in data]


def redact_values(name: str, values: Any) -> list[str]:
    """Values of one label or detected field: all masked when the name says secret."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise MalformedAnswer("values must be a list of strings")
    if sensitive_name(name):
        return [MASK] * min(len(values), 1)
    return list(dict.fromkeys(redact_many(values)))


def redact_patterns(data: Any) -> list[Any]:
    """patterns: [{"pattern": text, "samples": [...]}]; a pattern is line text with holes."""
    if not isinstance(data, list):
        raise MalformedAnswer("patterns `data` must be a list")
    out: list[Any] = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("pattern", ""), str):
            raise MalformedAnswer("a pattern must be an object with a string `pattern`")
        out.append({**item, "pattern": redact(item.get("pattern", ""))} if "pattern" in item else item)
    return out


def redact_tail_message(message: Any) -> Any:
    """One tail frame: {"streams": [...], "dropped_entries": [{"labels": "{...}", "timestamp"}]}."""
    if not isinstance(message, dict):
        raise MalformedAnswer("a tail message must be an object")
    dropped = message.get("dropped_entries") or []
    if not isinstance(dropped, list):
        raise MalformedAnswer("dropped_entries must be a list")
    return {
        **message,
        "streams": redact_streams(message.get("streams") or []),
        "dropped_entries": [
            {**d, "labels": redact(d["labels"])}
            if isinstance(d, dict) and isinstance(d.get("labels"), str)
            else d
            for d in dropped
        ],
    }


def count_lines(streams: Any) -> int:
    return sum(len(s.get("values") or []) for s in streams) if isinstance(streams, list) else 0


Redactor = Callable[[Any], Any]
