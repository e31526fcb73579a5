"""The Source protocol every source implements, and what a source with a backfill adds."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

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


class PendingObject(Protocol):
    """One item a backfill pass will read; its size measures the progress."""

    @property
    def size(self) -> int: ...


class BackfillPass(Source, Protocol):
    """A backfill (`shipper backfill`): a Source whose pass a progress bar can follow."""

    def pending_objects(self) -> Sequence[PendingObject]:
        """What a pass would read."""
        ...

    def follow(self, on_object_done: Callable[[PendingObject], None]) -> None:
        """Call `on_object_done` with each pending object once a pass has read it."""
        ...


@runtime_checkable
class Backfillable(Source, Protocol):
    """A live source that can ship history (`shipper backfill --since`) beside its live pass."""

    def for_backfill(
        self, since_ns: int, *, separate_stream: bool, live_cursor: Cursor | None
    ) -> BackfillPass:
        """The backfill of the objects updated since `since_ns`; `live_cursor` is the live pass's
        checkpoint; `separate_stream` ships into streams labelled backfill="true"."""
        ...

    def borrow_from_backfill(self, load_backfill_cursor: Callable[[], Cursor | None]) -> None:
        """Lets each live pass read the backfill's checkpoint (what the backfill already shipped)."""
        ...
