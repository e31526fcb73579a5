"""The opaque cursor of a page: the timestamp the page ended at and short digests of the entries
already returned *at* it (see gateway.services.boundary), the far end of the original window
(relative times like `2h` move between requests) and a digest of the query, tenant and direction,
so it cannot be replayed elsewhere."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field

from gateway.services.boundary import ENTRY_DIGEST_BYTES, Boundary, entry_digest
from gateway.services.errors import CursorError

CURSOR_VERSION = 2
QUERY_DIGEST_CHARS = 16
BAD_CURSOR_HINT = "pass next_cursor unchanged, with the same query and direction that produced it"


def query_digest(query: str, direction: str, tenant: str | None) -> str:
    material = json.dumps([query, direction, tenant or ""])
    return hashlib.sha256(material.encode()).hexdigest()[:QUERY_DIGEST_CHARS]



@dataclass(frozen=True)
class Cursor:
    query_digest: str
    boundary_ns: int  # timestamp of the last entry returned
    far_ns: int  # the other end of the original window: its end (forward) or start (backward)
    seen: frozenset[bytes] = field(default_factory=frozenset)  # digests returned at boundary_ns

    @property
    def boundary(self) -> Boundary[bytes]:
        return Boundary(self.boundary_ns, self.seen, entry_digest)

    def encode(self) -> str:
        """`<header>.<seen>`, each base64url once: the digests are most of a cursor when many
        entries share its boundary, and base64 inside base64 made 2,000 of them over 16 KiB."""
        header = {"v": CURSOR_VERSION, "q": self.query_digest, "b": str(self.boundary_ns)}
        raw = json.dumps({**header, "f": str(self.far_ns)}, separators=(",", ":")).encode()
        return f"{_b64(raw)}.{_b64(b''.join(sorted(self.seen)))}"

    @classmethod
    def decode(cls, text: str, expected_query_digest: str) -> Cursor:
        try:
            head, dot, tail = text.partition(".")
            if not dot:
                raise ValueError("no digests part")
            body = json.loads(_unb64(head))
            seen_raw = _unb64(tail)
            cursor = cls(
                query_digest=str(body["q"]),
                boundary_ns=int(body["b"]),
                far_ns=int(body["f"]),
                seen=frozenset(
                    seen_raw[i : i + ENTRY_DIGEST_BYTES] for i in range(0, len(seen_raw), ENTRY_DIGEST_BYTES)
                ),
            )
            if body["v"] != CURSOR_VERSION or len(seen_raw) % ENTRY_DIGEST_BYTES:
                raise ValueError("unsupported cursor")
        except (
            ValueError, KeyError, TypeError, OverflowError, RecursionError, binascii.Error, UnicodeDecodeError
        ) as exc:  # RecursionError: json.loads of deeply nested brackets ("[[[[...")
            raise CursorError("invalid_cursor", "the cursor is malformed", BAD_CURSOR_HINT) from exc
        if cursor.query_digest != expected_query_digest:
            raise CursorError("invalid_cursor", "the cursor belongs to a different query", BAD_CURSOR_HINT)
        return cursor


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)

