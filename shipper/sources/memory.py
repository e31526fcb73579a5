"""An in-memory source for tests: yields prepared records, cursor = count of records shipped."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from shipper.models import Batch, Cursor, LogRecord


class MemorySource:
    def __init__(self, source_id: str, records: Sequence[LogRecord], batch_size: int = 100) -> None:
        self.id = source_id
        self._records = list(records)
        self._batch_size = batch_size

    def pull(self, cursor: Cursor | None) -> Iterator[Batch]:
        start = int((cursor or {}).get("offset", 0))
        for begin in range(start, len(self._records), self._batch_size):
            end = min(begin + self._batch_size, len(self._records))
            yield Batch(records=self._records[begin:end], cursor={"offset": end})

    def check(self) -> str:
        return f"memory source with {len(self._records)} records"
