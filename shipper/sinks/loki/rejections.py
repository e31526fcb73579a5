"""Reading Loki's 400 answer to a push: which entries it refused, why, and whether the rest is stored.

Formats as recorded from Loki 3.7.6 (tests/fixtures/loki/push/, re-recorded by
tests/loki/test_recorded_push_answers.py). Two kinds of 400 exist, never both in one answer:

* The distributor's validation errors (pkg/validation): every refused entry has a message, and
  messages are grouped by text - one message alone, or `N errors like: <message>` joined by `; `:
      entry for stream '{a="b"}' has timestamp too old: 2024-01-01T00:00:00Z, oldest acceptable
          timestamp is: 2024-01-02T00:00:00Z          (times to the second, so entries group)
      entry for stream '{a="b"}' has timestamp too new: 2024-01-01T00:00:00Z
      max entry size '262144' bytes exceeded for stream '{a="b"}' while adding an entry with length
          '300000' bytes
      stream '{a="b"}' has structured metadata too large: '70003' bytes, limit: '65536' bytes. ...
      entry for stream '{a="b"}' has 16 label names; limit 15   (once per stream: the whole stream)
      couldn't parse labels: 1:5: parse error: ...   (names no stream)
  When this is the answer, the ingester stored everything else of the push.
* The ingester's refusal (pkg/ingester/stream.go), for entries more than 1 h behind the newest
  one of their stream: at most 10 listed, in the order sent, then the total:
      entry with timestamp 2024-01-01 00:00:00.5 +0000 UTC ignored, reason: 'entry too far behind, entry
          timestamp is: 2024-01-01T00:00:00Z, oldest acceptable timestamp is: 2024-01-01T01:00:00Z',
      user 'fake', total ignored: 12 out of 13 for stream: {a="b"}
  It describes *only the last stream of the push*: a push whose first stream was refused and whose
  last stream was fine is answered 204 (instance.Push keeps the last stream's error). It hides the
  distributor's errors of the same push; then `out of M` counts only what reached the ingester.

So the sink sends one stream per request, and `read_refusal` says which entries are refused and
whether that settles the push (everything else is stored, nothing to resend): a stream sent in
time order is refused a *prefix* (the cut-off only rises as entries are appended), so when
`out of M` is the whole stream the first N are exactly the refused ones, more than the 10
listed. Otherwise it names only what it is sure of and the caller resends the rest (Loki drops
exact duplicates) or bisects when nothing matched. Older Loki put ` for stream: {...}` on each
ingester line and ended with `total ignored: N out of M`; that form is read too (never settled).
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
    rf"entry for stream '{_STREAM}' has timestamp too old: (?P<ts>[^\s,]+),?"
    r"(?: oldest acceptable timestamp is: (?P<cutoff>\S+))?$"
)
_TOO_NEW = re.compile(rf"entry for stream '{_STREAM}' has timestamp too new: (?P<ts>\S+)$")
_LINE_TOO_LONG = re.compile(
    rf"max entry size '\d+' bytes exceeded for stream '{_STREAM}' while adding an entry with length "
    r"'(?P<length>\d+)' bytes",
    re.IGNORECASE,  # "Max entry size" before Loki 3
)
_METADATA_TOO_LARGE = re.compile(
    rf"stream '{_STREAM}' has structured metadata too large: '(?P<size>\d+)' bytes"
)
_METADATA_TOO_MANY = re.compile(
    rf"stream '{_STREAM}' has too many structured metadata labels: '(?P<count>\d+)'"
)
_STREAM_WIDE = (
    (re.compile(rf"entry for stream '{_STREAM}' has \d+ label names; limit \d+"), INVALID_LABELS),
    (re.compile(rf"stream '{_STREAM}' has label (?:name|value) too long"), INVALID_LABELS),
    (re.compile(rf"stream '{_STREAM}' has duplicate label name"), INVALID_LABELS),
    (re.compile(rf"error parsing labels '{_STREAM}' with error", re.IGNORECASE), INVALID_LABELS),
    (re.compile(rf"missing required labels '.*' for user '.*' for stream '{_STREAM}'"), INVALID_LABELS),
    (re.compile(rf"stream '{_STREAM}' includes structured metadata"), STRUCTURED_METADATA),
)
# Labels Loki could not parse at all: the message does not name a stream we could resolve.
_UNPARSED_LABELS = re.compile(r"couldn't parse labels|error parsing labels", re.IGNORECASE)
_GROUPED = re.compile(r"(?:^|; )(\d+) errors like: ")
_INGESTER_ENTRY = re.compile(
    r"entry with timestamp (?P<ts>.+?) ignored, reason: '(?P<reason>.*?)'"
    r"(?: for stream: (?P<stream>\{.*\}))?,?$"
)
_INGESTER_TRAILER = re.compile(
    r"total ignored: (?P<total>\d+) out of (?P<out_of>\d+)(?: for stream: (?P<stream>\{.*\}))?\s*$"
)
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
class Verdict:
    """What a 400 answer says about the entries of the push."""

    refused: dict[int, str]  # entry.index -> reason, for the entries surely refused
    settled: bool  # every other entry of the push is stored: nothing to resend


_UNSURE = Verdict({}, False)


def read_refusal(body: str, entries: Sequence[Entry]) -> Verdict:
    """The refused entries of `entries` (as sent, in this order) named by Loki's 400 `body`."""
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if any(_INGESTER_ENTRY.match(line) or _INGESTER_TRAILER.search(line) for line in lines):
        return _read_ingester(lines, entries)
    return _read_validation(lines, entries)


def match_rejections(body: str, entries: Sequence[Entry]) -> dict[int, str]:
    """{entry.index: reason} for the entries of `entries` that the 400 body surely names."""
    return read_refusal(body, entries).refused


def _read_ingester(lines: list[str], entries: Sequence[Entry]) -> Verdict:
    listed: list[tuple[int, str, str | None]] = []  # (ts, reason text, stream of the older form)
    trailer: re.Match[str] | None = None
    for line in lines:
        if match := _INGESTER_ENTRY.match(line):
            ts = parse_go_time(match["ts"])
            if ts is not None:
                listed.append((ts, match["reason"], match["stream"]))
        elif match := _INGESTER_TRAILER.search(line):
            trailer = match
    streams = _stream_index(entries)
    cache: dict[str, StreamLabels | None] = {}
    refused: dict[int, str] = {}
    if trailer is None or trailer["stream"] is None:  # the older form: each line names its stream
        for ts, text, stream_text in listed:
            stream = _resolve(stream_text, streams, cache) if stream_text else None
            if stream is None:
                continue
            for entry in entries:
                if entry.stream.label_string == stream.label_string and entry.ts_ns == ts:
                    refused.setdefault(entry.index, classify(text))
        return Verdict(refused, False)
    stream = _resolve(trailer["stream"], streams, cache)
    if stream is None:
        return _UNSURE
    target = [entry for entry in entries if entry.stream.label_string == stream.label_string]
    total, out_of = int(trailer["total"]), int(trailer["out_of"])
    reasons = [classify(text) for _, text, _ in listed]
    if (
        listed
        and out_of == len(target)
        and total <= out_of
        and [entry.ts_ns for entry in target[: len(listed)]] == [ts for ts, _, _ in listed]
    ):
        # Everything reached the ingester and was refused in order from the oldest: the first
        # `total` entries, listed or not. The rest of this stream is stored.
        for position, entry in enumerate(target[:total]):
            refused[entry.index] = reasons[min(position, len(reasons) - 1)]
        return Verdict(refused, settled=len(target) == len(entries))
    # Some entries were refused by the distributor too (their errors are not in this answer), or
    # the list does not line up: name what is certain, the caller resends the rest.
    listed_ts = {ts: reason for (ts, _, _), reason in zip(listed, reasons, strict=True)}
    cutoff = _cutoff_of(listed) if total > len(listed) else None
    for entry in target:
        if entry.ts_ns in listed_ts:
            refused[entry.index] = listed_ts[entry.ts_ns]
        elif cutoff is not None and entry.ts_ns < cutoff:
            refused[entry.index] = TOO_FAR_BEHIND
    return Verdict(refused, False)


def _cutoff_of(listed: list[tuple[int, str, str | None]]) -> int | None:
    """The printed cut-off of `entry too far behind` (to the second: older entries surely refused)."""
    for _, text, _ in listed:
        if classify(text) == TOO_FAR_BEHIND and (match := _CUTOFF.search(text)):
            return parse_rfc3339(match["cutoff"])
    return None


def _messages(lines: list[str]) -> list[tuple[int, str]]:
    """(count, message) of a validation answer: `N errors like: m1; M errors like: m2` or one message."""
    out: list[tuple[int, str]] = []
    for line in lines:
        if _GROUPED.match(line):
            parts = _GROUPED.split(line)
            pairs = zip(parts[1::2], parts[2::2], strict=True)
            out.extend((int(count), message.strip()) for count, message in pairs)
        else:
            out.append((1, line))
    return out


def _read_validation(lines: list[str], entries: Sequence[Entry]) -> Verdict:
    messages = _messages(lines)
    streams = _stream_index(entries)
    cache: dict[str, StreamLabels | None] = {}
    refused: dict[int, str] = {}
    settled = bool(messages)
    for count, message in messages:
        found = _match_message(message, entries, streams, cache)
        if found is None:
            settled = False
            continue
        hits, reason, per_entry = found
        if not hits or (per_entry and len(hits) != count):
            settled = False
            if per_entry and len(hits) > count:
                continue  # which of them is not certain: resend them all
        for entry in hits:
            refused.setdefault(entry.index, reason)
    return Verdict(refused, settled)


def _match_message(
    message: str,
    entries: Sequence[Entry],
    streams: dict[frozenset[tuple[str, str]], StreamLabels],
    cache: dict[str, StreamLabels | None],
) -> tuple[list[Entry], str, bool] | None:
    """(the entries `message` is about, its reason, whether it is one message per entry)."""

    def of_stream(text: str) -> list[Entry]:
        stream = _resolve(text, streams, cache)
        return [] if stream is None else [e for e in entries if e.stream.label_string == stream.label_string]

    if match := _TOO_OLD.search(message):
        ts, cutoff = parse_rfc3339(match["ts"]), parse_rfc3339(match["cutoff"] or "")
        if ts is None:
            return None
        second = ts // _NS
        limit = cutoff + _NS if cutoff is not None else None  # printed to the second
        return [e for e in of_stream(match["stream"]) if e.ts_ns // _NS == second
                and (limit is None or e.ts_ns < limit)], TOO_OLD, True
    if match := _TOO_NEW.search(message):
        ts = parse_rfc3339(match["ts"])
        if ts is None:
            return None
        return [e for e in of_stream(match["stream"]) if e.ts_ns // _NS == ts // _NS], TOO_NEW, True
    if match := _LINE_TOO_LONG.search(message):
        length = int(match["length"])
        return [e for e in of_stream(match["stream"]) if e.line_bytes == length], LINE_TOO_LONG, True
    if match := _METADATA_TOO_LARGE.search(message):
        size = int(match["size"])
        return [e for e in of_stream(match["stream"]) if _metadata_size(e) == size], STRUCTURED_METADATA, True
    if match := _METADATA_TOO_MANY.search(message):
        pairs = int(match["count"])
        return [e for e in of_stream(match["stream"]) if len(_metadata_pairs(e)) == pairs], \
            STRUCTURED_METADATA, True
    for pattern, reason in _STREAM_WIDE:
        if match := pattern.search(message):
            return of_stream(match["stream"]), reason, False
    if _UNPARSED_LABELS.search(message) and len({e.stream.label_string for e in entries}) == 1:
        return list(entries), INVALID_LABELS, False
    return None


def _metadata_pairs(entry: Entry) -> dict[str, str]:
    return {**dict(entry.stream.moved), **entry.metadata}


def _metadata_size(entry: Entry) -> int:
    """Loki's structured metadata size: the bytes of every name and value."""
    return sum(len(name.encode()) + len(value.encode()) for name, value in _metadata_pairs(entry).items())


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
