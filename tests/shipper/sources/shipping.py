"""Driving a source as the pipeline does, for the source tests."""

from __future__ import annotations

from shipper.checkpoint import Checkpointer
from shipper.models import Batch, LogRecord
from shipper.sources.base import Source


def ship(source: Source, checkpoints: Checkpointer, stop_after: int | None = None) -> list[Batch]:
    """What the pipeline does: load, pull, commit each batch's cursor (optionally 'crash' early)."""
    batches = []
    for batch in source.pull(checkpoints.load(source.id)):
        batches.append(batch)
        checkpoints.commit(source.id, batch.cursor)
        if stop_after is not None and len(batches) >= stop_after:
            break
    return batches


def records_of(batches: list[Batch]) -> list[LogRecord]:
    return [record for batch in batches for record in batch.records]
