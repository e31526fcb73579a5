"""The Source protocol every source implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from shipper.models import Batch, Cursor


class SourceError(Exception):
    """A source could not be read (permission, missing bucket, unreachable API)."""


class Source(Protocol):
    id: str

    def pull(self, cursor: Cursor | None) -> Iterator[Batch]:
        """Yield batches in the order they must be committed; each batch's cursor covers it and
        everything yielded before it. Must stream: never hold a whole object or collection."""
        ...

    def check(self) -> str:
        """Verify access and return a one-line description of what was found."""
        ...
