"""Recognising an append: a new generation (or a grown object) that continues where the cursor
stopped. A plain object whose bytes before the offset (`tail`) and first bytes (`head`) are
unchanged ships only its new lines. (The tail alone is not enough: lines written from one template
share their last bytes.)"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from shipper.sources.gcs.cursor import ObjectEntry
from shipper.sources.gcs.listing import ObjectInfo

TAIL_BYTES = 32
HEAD_BYTES = 4096


def continues(blob: Any, info: ObjectInfo, entry: ObjectEntry) -> bool:
    """True when the new content continues where the cursor stopped (an append): the same
    bytes before the offset (`tail`) and at the start (`head`; lines written from one
    template share their ends, rarely their beginnings)."""
    offset = entry.offset
    if offset <= 0 or info.size < offset:
        return False
    if entry.describes(info):
        return True
    tail = bytes.fromhex(entry.tail or "")
    if not tail:
        return False
    found = blob.download_as_bytes(start=offset - len(tail), end=offset - 1, raw_download=True, checksum=None)
    if found != tail:
        return False
    head_length, _, head_digest = (entry.head or "").partition(":")
    if not head_digest:  # a cursor written before the head was kept: the tail decides
        return True
    first = blob.download_as_bytes(start=0, end=int(head_length) - 1, raw_download=True, checksum=None)
    return digest(first) == head_digest


class HeadDigest:
    """A digest of an object's first HEAD_BYTES (or fewer) shipped bytes, as "length:digest"."""

    def __init__(self, saved: str, *, reading_from_start: bool) -> None:
        self._saved = saved
        self._bytes = bytearray() if reading_from_start else None
        self._text = (0, saved)  # (bytes kept, text()) of the last text(): asked once per batch

    def wants_more(self) -> bool:
        """False once add() would keep nothing more (not read from the start, or HEAD_BYTES kept)."""
        return self._bytes is not None and len(self._bytes) < HEAD_BYTES

    def add(self, line: bytes) -> bool:
        """Keeps the start of `line` as far as HEAD_BYTES; answers wants_more()."""
        if self._bytes is not None and len(self._bytes) < HEAD_BYTES:
            self._bytes += line[: HEAD_BYTES - len(self._bytes)]
        return self.wants_more()

    def text(self) -> str:
        if self._bytes is None or not self._bytes:
            return self._saved
        kept = len(self._bytes)  # the bytes only grow: their length says whether they changed
        if self._text[0] != kept:
            self._text = (kept, f"{kept}:{digest(bytes(self._bytes))}")
        return self._text[1]


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def moved(start: ObjectEntry, offset: int, line_no: int, before: bytes, head: HeadDigest, *,
          done: bool = False) -> ObjectEntry:
    """`start` moved to where a read of its lines may resume, the entry a batch of lines commits:
    `offset` and `line_no` past the last whole line read, `before` the bytes before `offset` (that
    line, or b"" past a line cut at the line limit: no append check then). A last line without its
    newline is shipped but not passed: the object may still be written (an appendable object, or a
    new generation that completes the line), and the completed line must be read whole, with the
    same line number."""
    return replace(start, offset=offset, line_no=line_no, tail=before[-TAIL_BYTES:].hex(), head=head.text(),
                   done=done or start.done)
