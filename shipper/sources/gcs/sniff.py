"""What an object's first bytes say: binary or text, JSON Lines or one JSON document, and the
timestamp of its first record."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence

from orjson import loads as _loads  # 3-5x faster than json's per line; raises a ValueError subclass

from shipper.records import timestamp_from_fields
from shipper.sources.gcs.limits import BINARY_SNIFF_BYTES
from shipper.sources.gcs.reader import GZIP_MAGIC

BINARY_INVALID_MIN = 8  # undecodable bytes tolerated in the sniffed start of a text object
DOCUMENT_SUFFIXES = (".json",)
LINE_SUFFIXES = (".jsonl", ".ndjson", ".log", ".txt")
_JSON = json.JSONDecoder()
_UNDECIDED_TAIL_CHARS = 64  # a parse error this close to the end of the sniff may be truncation


def looks_binary(sample: bytes) -> bool:
    """NUL bytes, or more than a few undecodable bytes: a binary object, not text with a bad byte
    (which is shipped with the byte replaced)."""
    if b"\x00" in sample:
        return True
    invalid = sample.decode(errors="replace").count("\ufffd")
    return invalid > max(BINARY_INVALID_MIN, len(sample) // 20)


def mode_of(name: str, sniff: bytes, *, sniff_bytes: int = BINARY_SNIFF_BYTES) -> str:
    """"lines" or "document", from the name's suffix and the object's first `sniff_bytes` (fewer:
    `sniff` is the whole object)."""
    base = name.removesuffix(".gz").lower()
    if base.endswith(DOCUMENT_SUFFIXES):
        # JSON Lines is often stored as `.json`: read as one document, only its first line would
        # ship (the rest is "malformed") - content decides
        return "lines" if starts_json_lines(sniff) else "document"
    if base.endswith(LINE_SUFFIXES):
        return "lines"
    return "document" if starts_json_array(sniff, whole=len(sniff) < sniff_bytes) else "lines"


def starts_json_lines(sniff: bytes) -> bool:
    """Content whose first non-blank line is a whole JSON object or array, followed by another
    line that opens one: JSON Lines. A pretty-printed document's first line (`{` or `[`) does not
    parse alone; a document on one line has no second line (and reads the same either way)."""
    lines = iter(sniff.split(b"\n"))
    for line in lines:
        if line.strip():
            break
    else:
        return False
    try:
        first = _loads(line)
    except ValueError:
        return False
    if not isinstance(first, dict | list):
        return False
    for following in lines:
        if following.strip():
            return following.lstrip()[:1] in (b"{", b"[")
    return False


def starts_json_array(sniff: bytes, *, whole: bool) -> bool:
    """Content (no telling suffix) that opens a JSON array: `[`, then a first element that parses
    and is followed by `,` or `]`. Log lines such as "[2026-12-05 10:00:00] INFO ..." or
    "[INFO] ..." also start with `[` and must be read as lines. When the sniff is not the `whole`
    object, a first element that does not end within it cannot be judged: a JSON array is
    assumed, unless it fails early."""
    text = sniff.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if not text.startswith("["):
        return False
    start = len(text) - len(text[1:].lstrip())
    if start == len(text) or text[start] == "]":
        return True
    try:
        _, end = _JSON.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        if whole:
            return False
        return exc.msg.startswith("Unterminated") or exc.pos >= len(text) - _UNDECIDED_TAIL_CHARS
    rest = text[end:].lstrip()
    return not rest or rest[0] in ",]"


def first_record_ns(head: bytes, timestamp_fields: Sequence[str], fallback: int, limit: int) -> int:
    """The timestamp of the first line of an object's first bytes `head` (stored bytes, inflated
    here to `limit` bytes if gzip); `fallback` for a line without one, or a start that does not
    parse."""
    if head[:2] == GZIP_MAGIC:
        try:
            head = zlib.decompressobj(wbits=31).decompress(head, limit)
        except zlib.error:
            return fallback
    for line in head.split(b"\n"):
        if line.strip():
            try:
                fields = _loads(line)
            except ValueError:
                return fallback
            if not isinstance(fields, dict):
                return fallback
            found = timestamp_from_fields(fields, timestamp_fields)
            return fallback if found is None else found
    return fallback
