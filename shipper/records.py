"""Shared record helpers for every source: level and timestamp taken from the record itself."""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shipper.models import LEVELS

LEVEL_FIELDS = ("level", "severity", "levelname", "lvl", "loglevel")

_LEVEL_ALIASES = {
    "trace": "debug", "debug": "debug", "dbg": "debug",
    "info": "info", "information": "info", "informational": "info", "notice": "info", "default": "info",
    "warn": "warn", "warning": "warn",
    "error": "error", "err": "error", "fail": "error", "failure": "error",
    "critical": "critical", "crit": "critical", "fatal": "critical", "panic": "critical",
    "alert": "critical", "emergency": "critical", "emerg": "critical",
}
# Values used as they are (no strip/lower needed): every alias in lower, upper and title case.
EXACT_LEVELS = {
    variant: level
    for alias, level in _LEVEL_ALIASES.items()
    for variant in (alias, alias.upper(), alias.title())
}
# A leading token such as "ERROR ...", "[warn] ...", "level=info ...", "2026-01-01T00:00:00Z INFO ...".
_LEADING_LEVEL = re.compile(
    r"^\s*(?:\S*\d{2}:\d{2}:\d{2}\S*\s+)?[\[(<]?(?:level=|lvl=|severity=)?\"?([A-Za-z]{3,11})\b"
)
_EPOCH_NS_THRESHOLD = 10**17
_EPOCH_US_THRESHOLD = 10**14
_EPOCH_MS_THRESHOLD = 10**11  # also written as 1e11 in timestamp_from_fields
_INFINITY = float("inf")
# epoch units as _epoch_ns tells them apart by magnitude: (smallest value of the unit, units per
# second), largest unit first
EPOCH_UNITS = (
    (_EPOCH_NS_THRESHOLD, 10**9), (_EPOCH_US_THRESHOLD, 10**6), (_EPOCH_MS_THRESHOLD, 10**3), (0, 1)
)
_EPOCH_MAX_DIGITS = 19  # ns since 1970 until the year 2286
_EPOCH_TEXT = re.compile(r"-?\d+(\.\d+)?")


def normalise_level(value: Any) -> str:
    """Map a level/severity value to one of LEVELS; unknown values give 'unknown'."""
    if isinstance(value, str):
        return _LEVEL_ALIASES.get(value.strip().lower(), "unknown")
    return "unknown"


def level_from_fields(record: Mapping[str, Any]) -> str | None:
    for name in LEVEL_FIELDS:
        if name in record:
            value = record[name]
            if type(value) is str:  # the common case: an exact alias such as "info" or "ERROR"
                level = EXACT_LEVELS.get(value)
                if level is not None:
                    return level
            return normalise_level(value)
    return None


def level_from_text(line: str) -> str:
    match = _LEADING_LEVEL.match(line)
    if match:
        level = _LEVEL_ALIASES.get(match.group(1).lower())
        if level:
            return level
    return "unknown"


def level_of(record: Mapping[str, Any] | None, line: str) -> str:
    """Level from the record's fields when it is structured, else from a leading token."""
    if record is not None:
        found = level_from_fields(record)
        if found is not None:
            return found
    return level_from_text(line)


def parse_timestamp_ns(value: Any) -> int | None:
    """RFC 3339 / ISO 8601 strings (naive means UTC), datetimes, or epoch numbers in s, ms, us or
    ns (told apart by magnitude). Returns None when the value is not a usable timestamp."""
    kind = type(value)
    if kind is float or kind is int:  # the common case first (bool is a subclass, not these)
        return _epoch_ns(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, datetime):
        return _datetime_ns(value)
    if isinstance(value, int | float):
        return _epoch_ns(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _EPOCH_TEXT.fullmatch(text):
            return _epoch_text_ns(text)
        return _iso_ns(text)
    return None


def timestamp_from_fields(record: Mapping[str, Any], fields: Sequence[str]) -> int | None:
    for name in fields:
        value = record.get(name)  # absent and null are both "no timestamp here"
        if value is not None:
            # the common case inlined (epoch seconds below _EPOCH_MS_THRESHOLD), as _epoch_ns does it
            if type(value) is float and 0.0 <= value < 1e11:
                whole = int(value)
                return whole * 1_000_000_000 + round((value - whole) * 1e9)
            parsed = parse_timestamp_ns(value)
            if parsed is not None:
                return parsed
    return None


def _epoch_text_ns(text: str) -> int | None:
    """Epoch digits with an optional fraction, exactly (a float would blur the nanoseconds:
    "1772366432565.0" ms is not 1772366432564999936 ns)."""
    whole, _, fraction = text.partition(".")
    if whole.startswith("-") or len(whole) > _EPOCH_MAX_DIGITS:  # negative, or no time at all
        return None
    seconds_or_unit = int(whole)
    per_second = next(per for floor, per in EPOCH_UNITS if seconds_or_unit >= floor)
    ns_per_unit = 1_000_000_000 // per_second
    digits = len(str(ns_per_unit)) - 1  # fraction digits that are still whole nanoseconds
    return seconds_or_unit * ns_per_unit + int(fraction[:digits].ljust(digits, "0") or 0)


def _epoch_ns(number: float) -> int | None:
    if not 0 <= number < _INFINITY:  # NaN, negative or infinite
        return None
    if number < _EPOCH_MS_THRESHOLD:  # seconds, the most common unit
        whole = int(number)  # split so a float's 53-bit mantissa does not blur the nanoseconds
        return whole * 1_000_000_000 + round((number - whole) * 1_000_000_000)
    if number >= _EPOCH_NS_THRESHOLD:
        return int(number)
    if number >= _EPOCH_US_THRESHOLD:
        return int(number * 1_000)
    return int(number * 1_000_000)


_FRACTION = re.compile(r"\.(\d+)")


def _iso_ns(text: str) -> int | None:
    normalised = text.replace("Z", "+00:00").replace("z", "+00:00")
    fraction_ns = 0
    match = _FRACTION.search(normalised)
    if match:  # datetime keeps only microseconds: carry the full fraction ourselves
        digits = match.group(1)
        fraction_ns = int(digits[:9].ljust(9, "0"))
        normalised = normalised[: match.start()] + normalised[match.end() :]
    try:
        parsed = datetime.fromisoformat(normalised)
    except ValueError:
        return None
    base = _datetime_ns(parsed.replace(microsecond=0))
    return base + fraction_ns if base is not None else None


def _datetime_ns(value: datetime) -> int | None:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = int(value.timestamp())
    if seconds < 0:
        return None
    return seconds * 1_000_000_000 + value.microsecond * 1_000


# A plain-text line's own time, at its very start (optionally in brackets): RFC 3339 / ISO 8601
# ("2026-12-05T09:56:21.217Z", "2026-12-05 09:56:21,217 +02:00"; no zone means UTC) or syslog's
# "Dec  5 09:56:21" (no year: the one of the object's base time, see timestamp_from_text).
_TEXT_ISO = re.compile(
    r"\[?(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?\s?(Z|z|[+-]\d{2}:?\d{2})?(?=[\]\s|]|$)"
)
_TEXT_SYSLOG = re.compile(
    r"\[?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})"
    r"(?:\.(\d{1,9}))?(?=[\]\s]|$)"
)
_MONTHS = {name: index for index, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
)}
_SYSLOG_FUTURE_SLACK_NS = 2 * 86_400 * 1_000_000_000


def timestamp_from_text(line: str, reference_ns: int) -> int | None:
    """The time a plain-text line starts with, None when it starts with none. Deterministic for a
    given line and reference (the object's base time, itself fixed once per object), so a resend
    carries the same timestamp and Loki drops the duplicate. A syslog time has no year: the
    reference's, or the year before when that would put the line days after the reference."""
    first = line[:1]
    if not first or not (first.isdigit() or first == "[" or first in "JFMASOND"):
        return None
    iso = _TEXT_ISO.match(line)
    if iso:
        date, clock, fraction, zone = iso.groups()
        zone = "+00:00" if zone in (None, "Z", "z") else zone
        if len(zone) == 5:  # +0200
            zone = f"{zone[:3]}:{zone[3:]}"
        return _iso_ns(f"{date}T{clock}{'.' + fraction if fraction else ''}{zone}")
    syslog = _TEXT_SYSLOG.match(line)
    if syslog is None:
        return None
    month, day, hour, minute, second, fraction = syslog.groups()
    year = datetime.fromtimestamp(reference_ns // 1_000_000_000, UTC).year
    for candidate in (year, year - 1):
        try:
            stamp = datetime(
                candidate, _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=UTC
            )
        except ValueError:  # Feb 29 outside a leap year, day 31 of a short month
            continue
        ts_ns = int(stamp.timestamp()) * 1_000_000_000 + int((fraction or "0")[:9].ljust(9, "0"))
        if ts_ns <= reference_ns + _SYSLOG_FUTURE_SLACK_NS:
            return ts_ns
    return None


def format_rfc3339_ns(ts_ns: int) -> str:
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector around an allocation-heavy, cycle-free section
    (the pipeline's push cycle: records read, pushed and dropped; the sink preparing and encoding
    them): otherwise its collections rescan every record built so far, and records held for a
    push get promoted to the oldest generation, whose full collections scan the whole heap. Only
    re-enables what it disabled, so nesting and other threads cannot leave it disabled; cyclic
    garbage made meanwhile is collected after the section."""
    was_enabled = gc.isenabled()
    if was_enabled:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


assert set(_LEVEL_ALIASES.values()) <= set(LEVELS)
