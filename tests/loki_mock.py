"""A stand-in for Loki's push endpoint (`POST /loki/api/v1/push`, `GET /ready`) at the HTTP layer.

Use it as an httpx transport (`httpx.MockTransport(mock.handler)`, or a respx side effect), or as a
real HTTP server on 127.0.0.1 (`with mock.serve() as base_url:`), or as a separate process for
benchmarks (`python -m tests.loki_mock --port 0 --accept-only`, prints its URL on stdout).

It decodes each body exactly as Loki does and fails loudly on anything Loki would not accept:

- protobuf: `Content-Type: application/x-protobuf`, body in snappy *block* format, message
  `logproto.PushRequest` (decoded here with a hand-written wire decoder, so the field numbers are
  checked independently of the sink's push.proto: streams=1; StreamAdapter labels=1, entries=2,
  hash=3; EntryAdapter timestamp=1 (google.protobuf.Timestamp seconds=1, nanos=2), line=2,
  structuredMetadata=3; LabelPairAdapter name=1, value=2);
- JSON: `Content-Type: application/json`, optional `Content-Encoding: gzip`,
  `{"streams": [{"stream": {..}, "values": [["<ns>", "<line>", {<metadata>}?], ..]}]}`;
- label strings in Prometheus syntax `{a="b", c="d"}` (names `[a-zA-Z_][a-zA-Z0-9_]*`, Go string
  literal values, no duplicates, at least one label);
- `X-Scope-OrgID` equal to the configured tenant (and absent when none is configured);
- `Authorization` matching the configured basic or bearer credentials.

A wire violation raises AssertionError in transport mode (so the test fails where it happened)
and answers 400 in server mode; either way it is recorded in `violations`.

Storage follows Loki's dedup rule: an entry whose stream (label set), timestamp and line equal an
already stored one is dropped. Loki's validation can be switched on (`reject_older_than_ns`,
`max_line_bytes`, `max_label_names`, `max_behind_ns` for "entry too far behind"); rejected entries
answer 400 with Loki's own messages while the valid ones are stored, as Loki's partial success does,
in the formats recorded from Loki 3.7.6 (tests/fixtures/loki/push/, checked against these functions
by tests/loki/test_recorded_push_answers.py): validation errors grouped (`N errors like: ...; ...`),
label errors once per stream, and an ingester refusal only for the *last* stream of the push (a
refusal in an earlier stream is answered 204, as Loki does), counting only what passed validation.
Scripted replies (`mock.script(...)`) are consumed one per push before any of that: a status with
optional headers/body (`Reply`), or a transport error (`Disconnect`).

API: `entries()` -> [(labels, ts_ns, line, metadata)], `distinct()` -> {(frozenset(labels), ts_ns,
line)}, `streams()`, `requests` (DecodedPush: format, headers, streams, entry_count),
`push_attempts`, `violations` / `assert_clean()`, `ready_status`, `script(...)`, `serve()`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cramjam
import httpx

PUSH_PATH = "/loki/api/v1/push"
READY_PATH = "/ready"
MAX_RETURNED_ERRORS = 10  # Loki's ingester `max_returned_stream_errors` default

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
               "\\": "\\", '"': '"', "'": "'"}

Labels = dict[str, str]
# A predicate over (labels, ts_ns, line) returning a Loki-style rejection message or None.
RejectRule = Callable[[Labels, int, str], "str | None"]


# ---------------------------------------------------------------------------------------------
# decoded request types


@dataclass
class DecodedEntry:
    ts_ns: int
    line: str
    metadata: dict[str, str]


@dataclass
class DecodedStream:
    label_string: str  # as sent (protobuf) or rendered (JSON)
    labels: Labels
    entries: list[DecodedEntry]


@dataclass
class DecodedPush:
    format: str  # "protobuf" or "json"
    headers: dict[str, str]
    streams: list[DecodedStream]
    body_bytes: int

    @property
    def entry_count(self) -> int:
        return sum(len(stream.entries) for stream in self.streams)


@dataclass(frozen=True)
class Reply:
    """A scripted HTTP answer. `store=True` stores the push before answering (an ack lost on the
    way back: e.g. a 500 or timeout after Loki already wrote the entries)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    store: bool = False


@dataclass(frozen=True)
class Disconnect:
    """A scripted transport failure (raised as this httpx exception type in transport mode; in
    server mode the connection is closed without an answer)."""

    error: type[httpx.TransportError] = httpx.ConnectError
    store: bool = False


Scripted = Reply | Disconnect


# ---------------------------------------------------------------------------------------------
# wire decoding


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise AssertionError("protobuf: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise AssertionError("protobuf: varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of one protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(buf, pos)
            yield number, wire_type, value
        elif wire_type == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise AssertionError("protobuf: truncated length-delimited field")
            yield number, wire_type, buf[pos : pos + length]
            pos += length
        elif wire_type == 1:
            yield number, wire_type, buf[pos : pos + 8]
            pos += 8
        elif wire_type == 5:
            yield number, wire_type, buf[pos : pos + 4]
            pos += 4
        else:
            raise AssertionError(f"protobuf: unsupported wire type {wire_type}")


def _expect(number: int, wire_type: int, expected: int, where: str) -> None:
    if wire_type != expected:
        raise AssertionError(f"protobuf: {where} field {number} has wire type {wire_type}, want {expected}")


def _utf8(raw: int | bytes, where: str) -> str:
    assert isinstance(raw, bytes)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AssertionError(f"protobuf: {where} is not valid UTF-8 (Loki rejects it)") from exc


def _decode_label_pair(buf: bytes) -> tuple[str, str]:
    name = value = ""
    for number, wire_type, raw in _fields(buf):
        _expect(number, wire_type, 2, "LabelPairAdapter")
        if number == 1:
            name = _utf8(raw, "structured metadata name")
        elif number == 2:
            value = _utf8(raw, "structured metadata value")
        else:
            raise AssertionError(f"protobuf: unknown LabelPairAdapter field {number}")
    return name, value


def _decode_timestamp(buf: bytes) -> int:
    seconds = nanos = 0
    for number, wire_type, raw in _fields(buf):
        _expect(number, wire_type, 0, "Timestamp")
        assert isinstance(raw, int)
        if number == 1:
            seconds = raw - (1 << 64) if raw >= 1 << 63 else raw
        elif number == 2:
            nanos = raw
        else:
            raise AssertionError(f"protobuf: unknown Timestamp field {number}")
    if not 0 <= nanos < 1_000_000_000:
        raise AssertionError(f"protobuf: Timestamp.nanos out of range: {nanos}")
    return seconds * 1_000_000_000 + nanos


def _decode_entry(buf: bytes) -> DecodedEntry:
    ts_ns: int | None = None
    line = ""
    metadata: dict[str, str] = {}
    for number, wire_type, raw in _fields(buf):
        _expect(number, wire_type, 2, "EntryAdapter")
        assert isinstance(raw, bytes)
        if number == 1:
            ts_ns = _decode_timestamp(raw)
        elif number == 2:
            line = _utf8(raw, "line")
        elif number == 3:
            name, value = _decode_label_pair(raw)
            metadata[name] = value
        else:
            raise AssertionError(f"protobuf: unknown EntryAdapter field {number}")
    if ts_ns is None:
        raise AssertionError("protobuf: entry without timestamp")
    return DecodedEntry(ts_ns, line, metadata)


def _decode_stream(buf: bytes) -> DecodedStream:
    label_string = ""
    entries: list[DecodedEntry] = []
    for number, wire_type, raw in _fields(buf):
        if number == 1:
            _expect(number, wire_type, 2, "StreamAdapter")
            label_string = _utf8(raw, "labels")
        elif number == 2:
            _expect(number, wire_type, 2, "StreamAdapter")
            assert isinstance(raw, bytes)
            entries.append(_decode_entry(raw))
        elif number == 3:
            _expect(number, wire_type, 0, "StreamAdapter")
        else:
            raise AssertionError(f"protobuf: unknown StreamAdapter field {number}")
    return DecodedStream(label_string, parse_label_string(label_string), entries)


def decode_protobuf(body: bytes) -> list[DecodedStream]:
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:
        raise AssertionError(f"body is not snappy block format: {exc}") from exc
    streams: list[DecodedStream] = []
    for number, wire_type, value in _fields(raw):
        if number != 1:
            raise AssertionError(f"protobuf: unknown PushRequest field {number}")
        _expect(number, wire_type, 2, "PushRequest")
        assert isinstance(value, bytes)
        streams.append(_decode_stream(value))
    return streams


def _go_unquote(literal: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(literal):
        char = literal[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        code = literal[i + 1] if i + 1 < len(literal) else ""
        if code in _GO_ESCAPES:
            out.append(_GO_ESCAPES[code])
            i += 2
        elif code in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[code]
            digits = literal[i + 2 : i + 2 + width]
            if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise AssertionError(f"label value: bad \\{code} escape in {literal!r}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        else:
            raise AssertionError(f"label value: escape \\{code} is not valid Go syntax in {literal!r}")
    return "".join(out)


_LABEL_PAIR = re.compile(r'([^=\s,{}]+)="((?:[^"\\]|\\.)*)"')


def parse_label_string(text: str) -> Labels:
    """Parse `{a="b", c="d"}` the way Loki's stream selector parser accepts it."""
    if not (text.startswith("{") and text.endswith("}")):
        raise AssertionError(f"labels {text!r}: must be wrapped in braces")
    inner = text[1:-1].strip()
    labels: Labels = {}
    pos = 0
    while pos < len(inner):
        match = _LABEL_PAIR.match(inner, pos)
        if not match:
            raise AssertionError(f"labels {text!r}: cannot parse at {inner[pos:]!r}")
        name, value = match.group(1), _go_unquote(match.group(2))
        if not _LABEL_NAME.fullmatch(name):
            raise AssertionError(f"labels {text!r}: invalid label name {name!r}")
        if name in labels:
            raise AssertionError(f"labels {text!r}: duplicate label name {name!r}")
        labels[name] = value
        pos = match.end()
        if pos < len(inner):
            if inner[pos] != ",":
                raise AssertionError(f"labels {text!r}: expected ',' at {inner[pos:]!r}")
            pos += 1
            while pos < len(inner) and inner[pos] == " ":
                pos += 1
    if not labels:
        raise AssertionError("error at least one label pair is required per stream")
    return labels


def render_label_string(labels: Mapping[str, str]) -> str:
    """Loki's rendering of a label set (sorted names, Go-quoted values)."""
    return "{" + ", ".join(f"{k}={json.dumps(labels[k], ensure_ascii=False)}" for k in sorted(labels)) + "}"


def decode_json(body: bytes) -> list[DecodedStream]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise AssertionError(f"JSON body does not parse: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("streams"), list):
        raise AssertionError('JSON body must be {"streams": [...]}')
    streams: list[DecodedStream] = []
    for stream in document["streams"]:
        labels = stream.get("stream")
        if not isinstance(labels, dict) or not labels:
            raise AssertionError("error at least one label pair is required per stream")
        for name, value in labels.items():
            if not _LABEL_NAME.fullmatch(name) or not isinstance(value, str):
                raise AssertionError(f"JSON stream: invalid label {name!r}={value!r}")
        entries: list[DecodedEntry] = []
        for value in stream.get("values", []):
            if not isinstance(value, list) or len(value) not in (2, 3):
                raise AssertionError(f"JSON value must be [ts, line] or [ts, line, metadata]: {value!r}")
            ts, line = value[0], value[1]
            if not isinstance(ts, str) or not ts.isdigit():
                raise AssertionError(f"JSON timestamp must be a string of nanoseconds: {ts!r}")
            if not isinstance(line, str):
                raise AssertionError(f"JSON line must be a string: {line!r}")
            metadata = value[2] if len(value) == 3 else {}
            if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
            ):
                raise AssertionError(f"JSON structured metadata must map strings to strings: {metadata!r}")
            entries.append(DecodedEntry(int(ts), line, dict(metadata)))
        streams.append(DecodedStream(render_label_string(labels), dict(labels), entries))
    return streams


# ---------------------------------------------------------------------------------------------
# Loki's message formats


def go_time_string(ts_ns: int) -> str:
    """Go's time.Time.String() in UTC, e.g. `2024-01-02 03:04:05.5 +0000 UTC`."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + " +0000 UTC"


def rfc3339(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def too_old_message(label_string: str, ts_ns: int, cutoff_ns: int) -> str:
    return (f"entry for stream '{label_string}' has timestamp too old: {rfc3339(ts_ns)}, "
            f"oldest acceptable timestamp is: {rfc3339(cutoff_ns)}")


def line_too_long_message(label_string: str, line: str, limit: int) -> str:
    return (f"max entry size '{limit}' bytes exceeded for stream '{label_string}' while adding an "
            f"entry with length '{len(line.encode())}' bytes")


def too_many_labels_message(label_string: str, count: int, limit: int) -> str:
    return f"entry for stream '{label_string}' has {count} label names; limit {limit}"


def too_far_behind_reason(ts_ns: int, cutoff_ns: int) -> str:
    return (f"entry too far behind, entry timestamp is: {rfc3339(ts_ns)}, "
            f"oldest acceptable timestamp is: {rfc3339(cutoff_ns)}")


def ingester_message(tenant: str, label_string: str, failed: list[tuple[int, str]], total: int) -> str:
    """The ingester's partial-failure body: the first MAX_RETURNED_ERRORS entries, then a summary."""
    lines = [f"entry with timestamp {go_time_string(ts)} ignored, reason: '{reason}',"
             for ts, reason in failed[:MAX_RETURNED_ERRORS]]
    lines.append(f"user '{tenant}', total ignored: {len(failed)} out of {total} for stream: {label_string}")
    return "\n".join(lines) + "\n"


def grouped_errors(messages: list[str]) -> str:
    """The distributor's validation answer (Loki's util.GroupedErrors): identical messages counted,
    `N errors like: ` before each unless there is one message once; `; ` between them."""
    counts: dict[str, int] = {}
    for message in messages:
        counts[message] = counts.get(message, 0) + 1
    if len(counts) == 1 and len(messages) == 1:
        return messages[0] + "\n"
    return "; ".join(f"{n} errors like: {message}" for message, n in counts.items()) + "\n"


def rate_limited_message(tenant: str, limit_bytes: int, lines: int, size: int) -> str:
    """The distributor's 429 (tenant ingestion rate): nothing of the push is stored."""
    return (f"ingestion rate limit exceeded for user {tenant} (limit: {limit_bytes} bytes/sec) while "
            f"attempting to ingest '{lines}' lines totaling '{size}' bytes, reduce log volume or contact "
            "your Loki administrator to see if the limit can be increased\n")


def json_push_request(streams: list[dict[str, Any]]) -> httpx.Request:
    """A JSON push of Loki's `{"streams": [{"stream": {...}, "values": [...]}]}`, for `handler()`."""
    return httpx.Request("POST", "http://loki/loki/api/v1/push", json={"streams": streams})


# ---------------------------------------------------------------------------------------------
# the mock


class LokiMock:
    def __init__(
        self,
        *,
        tenant: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        reject_older_than_ns: int | None = None,
        max_line_bytes: int | None = None,
        max_label_names: int | None = None,
        max_behind_ns: int | None = None,
        reject: RejectRule | None = None,
        accept_only: bool = False,
    ) -> None:
        self.tenant = tenant
        self.basic_auth = basic_auth
        self.bearer_token = bearer_token
        self.reject_older_than_ns = reject_older_than_ns
        self.max_line_bytes = max_line_bytes
        self.max_label_names = max_label_names
        self.max_behind_ns = max_behind_ns
        self.reject_rule = reject
        self.accept_only = accept_only  # benchmarks: count bytes, decode nothing
        self.requests: list[DecodedPush] = []
        self.violations: list[str] = []
        self.ready_status = 200
        self.received_bytes = 0
        self.push_attempts = 0
        self._script: deque[Scripted] = deque()
        self._stored: dict[tuple[frozenset[tuple[str, str]], int, str], tuple[Labels, dict[str, str]]] = {}
        self._newest: dict[frozenset[tuple[str, str]], int] = {}
        self._lock = threading.Lock()

    # -- programming ---------------------------------------------------------------------------

    def script(self, *replies: Scripted) -> None:
        """Queue answers for the next pushes, one per push, before normal processing."""
        self._script.extend(replies)

    @property
    def pending_script(self) -> int:
        return len(self._script)

    # -- what Loki holds -----------------------------------------------------------------------

    def entries(self) -> list[tuple[Labels, int, str, dict[str, str]]]:
        with self._lock:
            return [(dict(labels), ts, line, dict(meta))
                    for (_, ts, line), (labels, meta) in self._stored.items()]

    def distinct(self) -> set[tuple[frozenset[tuple[str, str]], int, str]]:
        with self._lock:
            return set(self._stored)

    def streams(self) -> dict[frozenset[tuple[str, str]], list[tuple[int, str]]]:
        """Stored entries per stream, in timestamp order (as a query would return them)."""
        found: dict[frozenset[tuple[str, str]], list[tuple[int, str]]] = {}
        for key, ts, line in self.distinct():
            found.setdefault(key, []).append((ts, line))
        return {key: sorted(values) for key, values in found.items()}

    def assert_clean(self) -> None:
        assert not self.violations, f"Loki wire-format violations: {self.violations}"

    # -- HTTP ----------------------------------------------------------------------------------

    def handler(self, request: httpx.Request) -> httpx.Response:
        """httpx handler (MockTransport / respx side effect). Wire violations raise."""
        if request.url.path == READY_PATH and request.method == "GET":
            text = "ready\n" if self.ready_status == 200 else "not ready\n"
            return httpx.Response(self.ready_status, text=text)
        if request.url.path != PUSH_PATH:
            return httpx.Response(404, text="404 page not found\n")
        if request.method != "POST":
            return httpx.Response(405, text="method not allowed\n")
        with self._lock:
            self.push_attempts += 1
            scripted = self._script.popleft() if self._script else None
        body = request.read()
        self.received_bytes += len(body)
        if self.accept_only and scripted is None:
            return httpx.Response(204)
        try:
            push = self._decode(request, body)
        except AssertionError as exc:
            self.violations.append(str(exc))
            raise
        if isinstance(scripted, Disconnect):
            if scripted.store:
                self._ingest(push)
            raise scripted.error("scripted transport failure", request=request)
        if isinstance(scripted, Reply):
            if scripted.store:
                self._ingest(push)
            return httpx.Response(scripted.status, headers=dict(scripted.headers), text=scripted.body)
        status, message = self._ingest(push)
        return httpx.Response(status, text=message)

    def _decode(self, request: httpx.Request, body: bytes) -> DecodedPush:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self._check_tenant_and_auth(headers)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/x-protobuf":
            if headers.get("content-encoding", "") not in ("", "snappy"):
                raise AssertionError(f"protobuf push with Content-Encoding {headers['content-encoding']!r}")
            streams = decode_protobuf(body)
            push_format = "protobuf"
        elif content_type == "application/json":
            encoding = headers.get("content-encoding", "")
            if encoding == "gzip":
                try:
                    body = gzip.decompress(body)
                except OSError as exc:
                    raise AssertionError(f"Content-Encoding gzip but body is not gzip: {exc}") from exc
            elif encoding:
                raise AssertionError(f"unsupported Content-Encoding {encoding!r}")
            streams = decode_json(body)
            push_format = "json"
        else:
            raise AssertionError(f"unsupported Content-Type {content_type!r}")
        push = DecodedPush(push_format, headers, streams, len(body))
        with self._lock:
            self.requests.append(push)
        return push

    def _check_tenant_and_auth(self, headers: dict[str, str]) -> None:
        org = headers.get("x-scope-orgid")
        if org != self.tenant:
            raise AssertionError(f"X-Scope-OrgID is {org!r}, want {self.tenant!r}")
        auth = headers.get("authorization")
        if self.basic_auth is not None:
            user, password = self.basic_auth
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            if auth != f"Basic {token}":
                raise AssertionError("Authorization is not the configured basic credentials")
        elif self.bearer_token is not None:
            if auth != f"Bearer {self.bearer_token}":
                raise AssertionError("Authorization is not the configured bearer token")
        elif auth is not None:
            raise AssertionError("Authorization sent although no credentials are configured")

    def _validate(self, stream: DecodedStream, entry: DecodedEntry) -> str | None:
        """The distributor's per-entry validation message, or None."""
        if self.reject_older_than_ns is not None and entry.ts_ns < self.reject_older_than_ns:
            return too_old_message(stream.label_string, entry.ts_ns, self.reject_older_than_ns)
        if self.max_line_bytes is not None and len(entry.line.encode()) > self.max_line_bytes:
            return line_too_long_message(stream.label_string, entry.line, self.max_line_bytes)
        if self.reject_rule is not None:
            return self.reject_rule(stream.labels, entry.ts_ns, entry.line)
        return None

    def _ingest(self, push: DecodedPush) -> tuple[int, str]:
        """Store valid entries (dedup), answer like Loki: 204, or 400 naming what was refused."""
        validation_errors: list[str] = []
        ingester_error: str | None = None
        with self._lock:
            for stream in push.streams:
                key = frozenset(stream.labels.items())
                if self.max_label_names is not None and len(stream.labels) > self.max_label_names:
                    # a label error is reported once for the stream, and none of it is stored
                    validation_errors.append(
                        too_many_labels_message(stream.label_string, len(stream.labels), self.max_label_names)
                    )
                    continue
                behind: list[tuple[int, str]] = []
                reached = 0  # entries that passed validation: what the ingester's `out of M` counts
                for entry in stream.entries:
                    message = self._validate(stream, entry)
                    if message is not None:
                        validation_errors.append(message)
                        continue
                    reached += 1
                    newest = self._newest.get(key)
                    if self.max_behind_ns is not None and newest is not None:
                        cutoff = newest - self.max_behind_ns
                        if entry.ts_ns < cutoff:
                            behind.append((entry.ts_ns, too_far_behind_reason(entry.ts_ns, cutoff)))
                            continue
                    self._stored.setdefault((key, entry.ts_ns, entry.line), (stream.labels, entry.metadata))
                    self._newest[key] = max(newest or entry.ts_ns, entry.ts_ns)
                if not reached:
                    continue  # nothing of this stream reaches the ingester
                tenant = self.tenant or "fake"  # Loki's tenant when auth is disabled
                # Loki's ingester keeps the error of the last stream only (instance.Push)
                ingester_error = (ingester_message(tenant, stream.label_string, behind, reached)
                                  if behind else None)
        # Loki answers with the ingester's error when there is one, else the validation errors.
        if ingester_error is not None:
            return 400, ingester_error
        if validation_errors:
            return 400, grouped_errors(validation_errors)
        return 204, ""

    # -- real server -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Run as a real HTTP server on 127.0.0.1 (free port) in a thread; yields its base URL."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _handler_class(mock: LokiMock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = httpx.Request(
                self.command, f"http://loki{self.path}", headers=list(self.headers.items()), content=body
            )
            try:
                response = mock.handler(request)
            except AssertionError as exc:
                response = httpx.Response(400, text=f"wire format violation: {exc}\n")
            except httpx.TransportError:
                self.close_connection = True
                self.connection.close()
                return
            payload = response.content
            self.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve
        do_POST = _serve

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Loki push endpoint stand-in on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--accept-only", action="store_true", help="count bytes, do not decode")
    args = parser.parse_args()
    mock = LokiMock(accept_only=args.accept_only)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler_class(mock))
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
