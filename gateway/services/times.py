"""Time in and out, one vocabulary for every route and body.

In: RFC 3339 (ns precision kept), `now`, a relative duration back from now (`2h`, `30m`, `7d`,
Grafana's `now-2h`) or a Unix timestamp in seconds or nanoseconds. Out: RFC 3339 UTC with a `Z`
(entries with all nine fraction digits), and every answer's window as `{"since", "until"}`."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator

from gateway.services.errors import QueryError

NS_PER_SECOND = 1_000_000_000
NS_PER_HOUR = 3600 * NS_PER_SECOND
END_OF_YEAR_9999_S = 253_402_300_800  # 10000-01-01T00:00:00Z
END_OF_YEAR_9999_NS = END_OF_YEAR_9999_S * NS_PER_SECOND
MAX_DURATION_NS = 100 * 365 * 24 * NS_PER_HOUR  # anything longer is a typo (and overflows dates)

_DURATION_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_SECOND,
    "m": 60 * NS_PER_SECOND,
    "h": NS_PER_HOUR,
    "d": 24 * NS_PER_HOUR,
    "w": 7 * 24 * NS_PER_HOUR,
    "y": 365 * 24 * NS_PER_HOUR,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)")
_DURATION_RE = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_RFC3339_RE = re.compile(r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})")


def parse_duration_ns(text: str) -> int:
    if not _DURATION_RE.fullmatch(text):
        raise QueryError(
            "invalid_time",
            f"invalid duration {text!r}",
            "use durations like 30m, 2h, 7d or 1h30m",
        )
    total = sum(float(n) * _DURATION_UNITS_NS[u] for n, u in _DURATION_PART.findall(text))
    if total > MAX_DURATION_NS:  # also an infinite sum (400 nines)
        raise QueryError("invalid_time", f"duration {text[:40]!r} is over 100 years", "use a shorter one")
    return int(total)


def _within_supported_years(moment: datetime) -> datetime:
    """A moment whose UTC time lies before the year 9999 (so that windows around it and their
    RFC 3339 text exist); naive means UTC."""
    try:
        utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        utc = None
    if utc is None or utc.year >= 9999:
        raise ValueError("must be before the year 9999 in UTC")
    return moment


SupportedDatetime = Annotated[datetime, AfterValidator(_within_supported_years)]


def parse_time_ns(text: str, now_ns: int) -> int:
    """RFC 3339 (ns precision kept), `now`, a relative duration back from now (2h, 30m, 7d, or
    Grafana's now-2h), or a Unix timestamp in seconds or nanoseconds; between 1970 and 9999."""
    moment = _parse_time_ns(text.strip(), now_ns)
    if not 0 <= moment < END_OF_YEAR_9999_NS:
        raise QueryError(
            "invalid_time",
            f"time {text[:40]!r} is outside 1970-01-01 .. 9999-12-31",
            "use a time between 1970 and 9999 (RFC 3339, a Unix timestamp, or 2h / now-1h)",
        )
    return moment


def _parse_time_ns(text: str, now_ns: int) -> int:
    if text == "now":
        return now_ns
    if text.startswith("now-") and _DURATION_RE.fullmatch(text[4:]):  # Grafana's notation
        return now_ns - parse_duration_ns(text[4:])
    if _DURATION_RE.fullmatch(text):
        return now_ns - parse_duration_ns(text)
    if text.isascii() and text.isdigit():  # not "²": str.isdigit() takes it, int() does not
        value = int(text)
        return value if value > 10**14 else value * NS_PER_SECOND
    match = _RFC3339_RE.fullmatch(text)
    if match:
        base, fraction, zone = match.groups()
        try:
            moment = datetime.fromisoformat(base.replace("t", "T") + ("+00:00" if zone in "Zz" else zone))
        except ValueError:
            match = None
        else:
            return int(moment.timestamp()) * NS_PER_SECOND + int((fraction or "0").ljust(9, "0"))
    raise QueryError(
        "invalid_time",
        f"invalid time {text!r}",
        "use RFC 3339 (2024-05-01T12:00:00Z), a relative duration (30m, 2h, 7d, now-1h) or a Unix timestamp",
    )


_HOUR_MINUTE_TEXT = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECOND_TEXT = tuple(f"{s:02d}" for s in range(60))
SECONDS_PER_DAY = 86_400


@lru_cache(maxsize=1024)
def _day_text(day: int) -> str:
    return datetime.fromtimestamp(day * SECONDS_PER_DAY, UTC).strftime("%Y-%m-%dT")


@lru_cache(maxsize=4096)
def format_second(seconds: int) -> str:
    """RFC 3339 UTC up to whole seconds, without zone. The date comes from a small cache and the
    time of day from tables (UTC has no leap seconds, so this is exact): a 1,000-line page can
    span as many distinct seconds, and strftime cost ~2 us each."""
    day, second_of_day = divmod(seconds, SECONDS_PER_DAY)
    minute, second = divmod(second_of_day, 60)
    return f"{_day_text(day)}{_HOUR_MINUTE_TEXT[minute]}{_SECOND_TEXT[second]}"


def format_ns(ts_ns: int) -> str:
    """RFC 3339 UTC with all nine fraction digits (entries of a page share few distinct seconds)."""
    seconds, fraction = divmod(ts_ns, NS_PER_SECOND)
    return f"{format_second(seconds)}.{fraction:09d}Z"


def resolve_range(
    *,
    since: str | None,
    until: str | None,
    hours: float | None,
    now_ns: int,
    default_hours: float,
    max_hours: float,
) -> tuple[int, int]:
    """(start_ns, end_ns), end exclusive. `since` and `hours` are alternatives."""
    if since is not None and hours is not None:
        raise QueryError(
            "invalid_time",
            "give either since or hours, not both",
            "since=2h is the same as hours=2",
        )
    end = parse_time_ns(until, now_ns) if until else now_ns
    if since is not None:
        start = parse_time_ns(since, now_ns)
    else:
        span = default_hours if hours is None else hours
        if not 0 < span < math.inf:  # also refuses NaN
            raise QueryError("invalid_time", "hours must be a positive, finite number", "e.g. hours=1")
        if span > max_hours:
            raise _range_too_long(span, max_hours)
        start = end - int(span * NS_PER_HOUR)
    if start >= end:
        raise QueryError(
            "invalid_time",
            "the time range is empty: since is not before until",
            "swap since and until",
        )
    if end - start > max_hours * NS_PER_HOUR:
        raise _range_too_long((end - start) / NS_PER_HOUR, max_hours)
    return start, end


def _range_too_long(hours: float, max_hours: float) -> QueryError:
    return QueryError(
        "range_too_long",
        f"the time range of {hours:.1f}h exceeds the allowed {max_hours:g}h",
        f"narrow since/until (or hours) to at most {max_hours:g}h and page through with next_cursor",
    )


def iso_z(moment: datetime) -> str:
    """An aware datetime as RFC 3339 UTC with a `Z` (microsecond precision, as datetime holds)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now_z() -> str:
    return iso_z(datetime.now(UTC))


def echo_window(start_ns: int, end_ns: int) -> dict[str, str]:
    """The window an answer covers (end exclusive), as every answer echoes it."""
    return {"since": format_ns(start_ns), "until": format_ns(end_ns)}


def seconds_z(seconds: float) -> str:
    """A Unix time in (possibly fractional) seconds, as Loki's metric and pattern samples carry it."""
    whole = math.floor(seconds)
    millis = round((seconds - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return f"{format_second(whole)}.{millis:03d}Z" if millis else f"{format_second(whole)}Z"


def is_unix_seconds(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool)
        and 0 <= value < END_OF_YEAR_9999_S  # also False for NaN
    )


def _sample(point: Any) -> Any:
    """[t, v] with t in RFC 3339; anything else (a malformed sample) as it came."""
    if isinstance(point, list) and len(point) == 2 and is_unix_seconds(point[0]):
        return [seconds_z(point[0]), point[1]]
    return point


def samples_in_rfc3339(result: Any) -> Any:
    """A metric result (matrix, vector or scalar) with its Unix-second sample times in RFC 3339."""
    if not isinstance(result, list):
        return result
    if len(result) == 2 and is_unix_seconds(result[0]):  # scalar / string: [t, "v"]
        return _sample(result)
    shown = []
    for series in result:
        if isinstance(series, dict):
            series = dict(series)
            if isinstance(series.get("values"), list):
                series["values"] = [_sample(point) for point in series["values"]]
            if "value" in series:
                series["value"] = _sample(series["value"])
        shown.append(series)
    return shown
