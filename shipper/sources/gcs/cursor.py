"""The GCS cursor, `{"objects": {name: entry}}`: one entry per object seen, every entry replaced
(never mutated) when it moves. An entry's JSON form (ObjectEntry.dump) is what checkpoints hold.

    generation, size   the object version the entry describes (size in stored bytes)
    offset             bytes (decompressed for gzip) up to the end of the last shipped line that
                       ended with a newline (a last line without one is shipped but read again,
                       whole, if the object grows); for a single JSON document: the number of
                       elements shipped
    line_no            lines (or elements) shipped so far
    done               the object was read to its end
    gzip, mode         how it was read ("lines", "document" or "binary")
    base_ns            the fallback timestamp base (see first_base_ns); kept across generations,
                       and committed (with offset 0) before any line of a new object is pushed
    tail               hex of the last bytes before `offset`, to recognise an append
    head               "length:digest" of the first bytes (up to 4 KiB), to recognise an append
    first_ns           the timestamp of the first record, peeked when the object was first seen

The keys from base_ns on are written only once known (older checkpoints may lack them)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shipper.models import Cursor
from shipper.sources.gcs.listing import ObjectInfo

_OPTIONAL_KEYS = ("base_ns", "first_ns", "gzip", "mode", "tail", "head")


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    generation: int
    size: int
    offset: int = 0
    line_no: int = 0
    done: bool = False
    base_ns: int | None = None
    first_ns: int | None = None
    gzip: bool | None = None
    mode: str | None = None
    tail: str | None = None
    head: str | None = None

    @classmethod
    def load(cls, saved: Mapping[str, Any]) -> ObjectEntry:
        def number(key: str) -> int | None:
            return int(saved[key]) if key in saved else None

        gzip = saved.get("gzip")
        return cls(
            generation=int(saved.get("generation", -1)),
            size=int(saved.get("size", -1)),
            offset=int(saved.get("offset", 0)),
            line_no=int(saved.get("line_no", 0)),
            done=bool(saved.get("done", False)),
            base_ns=number("base_ns"),
            first_ns=number("first_ns"),
            gzip=None if gzip is None else bool(gzip),
            mode=saved.get("mode"),
            tail=saved.get("tail"),
            head=None if saved.get("head") is None else str(saved["head"]),
        )

    def dump(self) -> dict[str, Any]:
        saved: dict[str, Any] = {"generation": self.generation, "size": self.size, "offset": self.offset,
                                 "line_no": self.line_no, "done": self.done}
        for key in _OPTIONAL_KEYS:
            value = getattr(self, key)
            if value is not None:
                saved[key] = value
        return saved

    def describes(self, info: ObjectInfo) -> bool:
        return self.generation == info.generation

    def unchanged(self, info: ObjectInfo) -> bool:
        """Read to its end, and the object is still that version: nothing to read."""
        return self.done and self.generation == info.generation and self.size == info.size


def reading_order(info: ObjectInfo, entry: ObjectEntry | None) -> tuple[int, int]:
    """Reading order. First an object whose read stopped midway (a crash, a failed push): the
    resend then follows what the stopped pass pushed, in the same order, so it takes the same
    Loki streams (models.MAX_UNCOMMITTED_SPAN_NS). Then by when the unread content begins: a new
    object's (or one not started) first record, else (an append, a new generation) the time it
    was last written."""
    if entry is None:
        return 1, info.updated_ns
    if entry.describes(info) and entry.offset and not entry.done:
        return 0, info.updated_ns if entry.first_ns is None else entry.first_ns
    if entry.first_ns is not None and not entry.offset:
        return 1, entry.first_ns
    return 1, info.updated_ns


def first_base_ns(name: str, updated_ns: int) -> int:
    """An object's timestamp base: its `updated` time (milliseconds in GCS) plus microseconds from
    its name. Two objects written in the same millisecond would otherwise give their identical
    lines without a timestamp (a templated "worker started") the same timestamps in one stream,
    and Loki would keep only one of them."""
    return updated_ns + zlib.crc32(name.encode()) % 1000 * 1000


def base_ns_of(cursor: Cursor | None) -> dict[str, int]:
    """Object name -> base_ns, from a GCS cursor."""
    objects = (cursor or {}).get("objects", {})
    return {name: int(entry["base_ns"]) for name, entry in objects.items() if "base_ns" in entry}


class ObjectStates:
    """The cursor a pass builds: each object's entry, with its JSON form kept beside it, so that
    each batch's cursor copies JSON forms instead of dumping every entry again. Entries loaded
    from a checkpoint keep their JSON form as saved until they move."""

    def __init__(self, saved: Mapping[str, Mapping[str, Any]]) -> None:
        self._entries = {name: ObjectEntry.load(entry) for name, entry in saved.items()}
        self._saved = {name: dict(entry) for name, entry in saved.items()}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, name: str) -> ObjectEntry | None:
        return self._entries.get(name)

    def set(self, name: str, entry: ObjectEntry) -> None:
        self._entries[name] = entry
        self._saved[name] = entry.dump()

    def cursor(self) -> Cursor:
        return {"objects": dict(self._saved)}
