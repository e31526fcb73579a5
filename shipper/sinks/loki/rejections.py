"""Reading Loki's 400 answer to a push: which entries it refused, and why.

A 400 from Loki is a partial success: valid streams/entries are stored, the body names what was
refused, in these formats (Loki 2.x/3.x, pkg/validation/validate.go and pkg/ingester/stream.go):

    entry for stream '{a="b"}' has timestamp too old: 2024-01-01T00:00:00Z, oldest acceptable
        timestamp is: 2024-01-02T00:00:00Z
    entry for stream '{a="b"}' has timestamp too new: 2024-01-01T00:00:00Z
    Max entry size '262144' bytes exceeded for stream '{a="b"}' while adding an entry with length
        '300000' bytes
    entry for stream '{a="b"}' has 16 label names; limit 15
    stream '{a="b"}' has label name too long: '...'  (also: label value too long, duplicate label name)
    Error parsing labels '...' with error: ...
    stream '{a="b"}' includes structured metadata, but this feature is disallowed ...
    entry with timestamp 2024-01-01 00:00:00.5 +0000 UTC ignored, reason: 'entry too far behind, entry
        timestamp is: 2024-01-01T00:00:00Z, oldest acceptable timestamp is: 2024-01-01T01:00:00Z',
    user 'fake', total ignored: 3 out of 5 for stream: {a="b"}

(older Loki puts ` for stream: {...}` on each ingester line and ends with `total ignored: N out of M`).
The ingester lists at most 10 entries per stream, and timestamps are printed to the second in
validation messages, so `match_rejections` names only entries it is sure about; the caller resends
the rest and bisects when nothing could be matched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from shipper.sinks.loki.encode import Entry, StreamLabels

# The bounded reason vocabulary of shipper_entries_rejected{reason} and RejectedEntry.reason.
TOO_OLD = "too_old"
TOO_NEW = "too_new"
TOO_FAR_BEHIND = "too_far_behind"
OUT_OF_ORDER = "out_of_order"
LINE_TOO_LONG = "line_too_long"
INVALID_LABELS = "invalid_labels"
STRUCTURED_METADATA = "structured_metadata"
OTHER = "other"
REASONS = (TOO_OLD, TOO_NEW, TOO_FAR_BEHIND, OUT_OF_ORDER, LINE_TOO_LONG, INVALID_LABELS,
           STRUCTURED_METADATA, OTHER)

_NS = 1_000_000_000
_EPOCH_DATE = date(1970, 1, 1)
_STREAM = r"(?P<stream>\{.*\})"
_TOO_OLD = re.compile(
    rf"entry for stream '{_STREAM}' has timestamp too old: (?P<ts>\S+?),? "
    r"(?:oldest acceptable timestamp is: (?P<cutoff>\S+))?"
)
_TOO_OLD_BARE = re.compile(rf"entry for stream '{_STREAM}' has timestamp too old: (?P<ts>\S+)$")
_TOO_NEW = re.compile(rf"entry for stream '{_STREAM}' has timestamp too new: (?P<ts>\S+)")
_LINE_TOO_LONG = re.compile(
    rf"Max entry size '\d+' bytes exceeded for stream '{_STREAM}' while adding an entry with length "
    r"'(?P<length>\d+)' bytes"
)
_STREAM_WIDE = (
    (re.compile(rf"entry for stream '{_STREAM}' has \d+ label names; limit \d+"), INVALID_LABELS),
    (re.compile(rf"stream '{_STREAM}' has label (?:name|value) too long"), INVALID_LABELS),
    (re.compile(rf"stream '{_STREAM}' has duplicate label name"), INVALID_LABELS),
    (re.compile(rf"Error parsing labels '{_STREAM}' with error"), INVALID_LABELS),
    (re.compile(rf"stream '{_STREAM}' (?:includes|has) (?:too many )?structured metadata"),
     STRUCTURED_METADATA),
)
_INGESTER_ENTRY = re.compile(
    r"entry with timestamp (?P<ts>.+?) ignored, reason: '(?P<reason>.*?)'"
    r"(?: for stream: (?P<stream>\{.*\}))?,?$"
)
_INGESTER_TRAILER = re.compile(r"total ignored: \d+ out of \d+(?: for stream: (?P<stream>\{.*\}))?\s*$")
_CUTOFF = re.compile(r"oldest acceptable timestamp is: (?P<cutoff>\S+?)[',]*$")
_GO_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2}) (?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d{1,9}))? "
    r"(?P<sign>[+-])(?P<oh>\d{2})(?P<om>\d{2})"
)
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})T(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?:(?P<z>Z)|(?P<sign>[+-])(?P<oh>\d{2}):(?P<om>\d{2}))"
)
_LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
               "\\": "\\", '"': '"', "'": "'"}
_KEYWORDS = (
    ("too far behind", TOO_FAR_BEHIND), ("out of order", OUT_OF_ORDER), ("too old", TOO_OLD),
    ("too new", TOO_NEW), ("Max entry size", LINE_TOO_LONG), ("line too long", LINE_TOO_LONG),
    ("label", INVALID_LABELS), ("structured metadata", STRUCTURED_METADATA),
)
# Bodies that mean our request was malformed, not that some entries were bad: bisecting is useless.
_REQUEST_ERRORS = ("couldn't parse push request", "error decoding", "unsupported content type",
                   "snappy: corrupt")


def classify(message: str) -> str:
    """A reason from the vocabulary for any Loki rejection message."""
    for keyword, reason in _KEYWORDS:
        if keyword in message:
            return reason
    return OTHER


def is_request_error(body: str) -> bool:
    lowered = body.lower()
    return any(marker in lowered for marker in _REQUEST_ERRORS)


def _days_from_civil(year: int, month: int, day: int) -> int:
    return (date(year, month, day) - _EPOCH_DATE).days


def _to_ns(match: re.Match[str]) -> int:
    year, month, day = (int(part) for part in match["date"].split("-"))
    seconds = _days_from_civil(year, month, day) * 86400 + int(match["h"]) * 3600 + int(match["m"]) * 60
    seconds += int(match["s"])
    if match["sign"]:
        offset = int(match["oh"]) * 3600 + int(match["om"]) * 60
        seconds -= offset if match["sign"] == "+" else -offset
    frac = match["frac"] or ""
    return seconds * _NS + int(frac.ljust(9, "0") or 0)


def parse_go_time(text: str) -> int | None:
    """ns of Go's time.Time.String() output, e.g. `2024-01-01 00:00:00.5 +0000 UTC`."""
    match = _GO_TIME.match(text.strip())
    return _to_ns(match) if match else None


def parse_rfc3339(text: str) -> int | None:
    match = _RFC3339.match(text.strip())
    return _to_ns(match) if match else None


def _go_unquote(literal: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(literal):
        char = literal[i]
        if char != "\\" or i + 1 >= len(literal):
            out.append(char)
            i += 1
            continue
        code = literal[i + 1]
        width = {"x": 2, "u": 4, "U": 8}.get(code)
        if width and re.fullmatch(r"[0-9a-fA-F]+", literal[i + 2 : i + 2 + width] or "-"):
            out.append(chr(int(literal[i + 2 : i + 2 + width], 16)))
            i += 2 + width
        else:
            out.append(_GO_ESCAPES.get(code, code))
            i += 2
    return "".join(out)


def parse_labels(text: str) -> frozenset[tuple[str, str]] | None:
    """The label set of a Loki stream string `{a="b", c="d"}`; None when it does not parse."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    inner, pos, pairs = text[1:-1], 0, []
    while pos < len(inner):
        match = _LABEL_PAIR.match(inner, pos)
        if not match:
            return None
        pairs.append((match.group(1), _go_unquote(match.group(2))))
        pos = match.end()
    return frozenset(pairs)


@dataclass(frozen=True, slots=True)
class _Rule:
    reason: str
    stream: str | None  # Loki's stream string; None = any stream
    ts_ns: int | None = None  # exact timestamp
    second: int | None = None  # timestamp's whole second (validation messages print seconds)
    before_ns: int | None = None  # every entry older than this
    line_bytes: int | None = None


def _rules(body: str) -> list[_Rule]:
    rules: list[_Rule] = []
    waiting_for_stream: list[tuple[int, str]] = []  # (ts, reason text) of new-format ingester lines
    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            continue
        if match := _INGESTER_ENTRY.match(line):
            ts = parse_go_time(match["ts"])
            if ts is None:
                continue
            if match["stream"]:
                rules.extend(_ingester_rules(ts, match["reason"], match["stream"]))
            else:
                waiting_for_stream.append((ts, match["reason"]))
        elif match := _INGESTER_TRAILER.search(line):
            if match["stream"]:
                for ts, reason in waiting_for_stream:
                    rules.extend(_ingester_rules(ts, reason, match["stream"]))
            waiting_for_stream.clear()
        elif (match := _TOO_OLD.search(line)) or (match := _TOO_OLD_BARE.search(line)):
            cutoff = parse_rfc3339(match["cutoff"]) if match.groupdict().get("cutoff") else None
            ts = parse_rfc3339(match["ts"].rstrip(","))
            if cutoff is not None:
                rules.append(_Rule(TOO_OLD, None, before_ns=cutoff))  # the same cutoff for all streams
            elif ts is not None:
                rules.append(_Rule(TOO_OLD, match["stream"], second=ts // _NS))
        elif match := _TOO_NEW.search(line):
            ts = parse_rfc3339(match["ts"])
            if ts is not None:
                rules.append(_Rule(TOO_NEW, match["stream"], second=ts // _NS))
        elif match := _LINE_TOO_LONG.search(line):
            rules.append(_Rule(LINE_TOO_LONG, match["stream"], line_bytes=int(match["length"])))
        else:
            for pattern, reason in _STREAM_WIDE:
                if match := pattern.search(line):
                    rules.append(_Rule(reason, match["stream"]))
                    break
    return rules


def _ingester_rules(ts: int, reason_text: str, stream: str) -> list[_Rule]:
    reason = classify(reason_text)
    rules = [_Rule(reason, stream, ts_ns=ts)]
    if reason == TOO_FAR_BEHIND and (cutoff_match := _CUTOFF.search(reason_text)):
        cutoff = parse_rfc3339(cutoff_match["cutoff"])
        if cutoff is not None:
            # printed to the second, so entries before the printed value are surely refused
            rules.append(_Rule(reason, stream, before_ns=cutoff))
    return rules


def _stream_index(entries: Iterable[Entry]) -> dict[frozenset[tuple[str, str]], StreamLabels]:
    return {frozenset(entry.stream.labels.items()): entry.stream for entry in entries}


def _resolve(
    stream_text: str,
    streams: dict[frozenset[tuple[str, str]], StreamLabels],
    cache: dict[str, StreamLabels | None],
) -> StreamLabels | None:
    if stream_text in cache:
        return cache[stream_text]
    labels = parse_labels(stream_text)
    found = streams.get(labels) if labels is not None else None
    if found is None and labels is not None:
        # Loki may add labels of its own (e.g. service_name discovery): accept one unique superset match.
        candidates = [stream for key, stream in streams.items() if key <= labels]
        found = candidates[0] if len(candidates) == 1 else None
    cache[stream_text] = found
    return found


def match_rejections(body: str, entries: Sequence[Entry]) -> dict[int, str]:
    """{entry.index: reason} for the entries of `entries` that the 400 body surely names."""
    rules = _rules(body)
    if not rules:
        return {}
    streams = _stream_index(entries)
    cache: dict[str, StreamLabels | None] = {}
    targeted: list[tuple[_Rule, StreamLabels | None]] = []
    for rule in rules:
        if rule.stream is None:
            targeted.append((rule, None))
        elif (stream := _resolve(rule.stream, streams, cache)) is not None:
            targeted.append((rule, stream))
    rejected: dict[int, str] = {}
    for entry in entries:
        for rule, stream in targeted:
            if stream is not None and entry.stream.label_string != stream.label_string:
                continue
            if _applies(rule, entry):
                rejected.setdefault(entry.index, rule.reason)
                break
    return rejected


def _applies(rule: _Rule, entry: Entry) -> bool:
    if rule.before_ns is not None:
        return entry.ts_ns < rule.before_ns
    if rule.ts_ns is not None:
        return entry.ts_ns == rule.ts_ns
    if rule.second is not None:
        return entry.ts_ns // _NS == rule.second
    if rule.line_bytes is not None:
        return len(entry.line.encode("utf-8")) == rule.line_bytes
    return True  # stream-wide
