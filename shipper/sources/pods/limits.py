"""The sizes a pod-log pass reads and cuts by: one frozen object handed to the source, so that a
test (or a caller) sets a limit instead of patching a module constant."""

from __future__ import annotations

from dataclasses import dataclass

LOG_BATCH_LINES = 1000
REORDER_SLACK_SECONDS = 2  # how much older than the mark a later line may be and still be served
TRACKED_TIMESTAMPS = 10_000  # counts of lines per timestamp kept in one read, beyond the slack
LIST_PAGE_SIZE = 500
REQUEST_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class PodLimits:
    log_batch_lines: int = LOG_BATCH_LINES
    """Lines of one container log per batch."""
    reorder_slack_seconds: int = REORDER_SLACK_SECONDS
    """How much older than the mark a later line may be and still be served (a read starts this
    long before the mark's second)."""
    tracked_timestamps: int = TRACKED_TIMESTAMPS
    """Counts of lines per timestamp kept in one read, beyond the slack (position.TimestampCounts)."""
    list_page_size: int = LIST_PAGE_SIZE
    """Pods per page of the listing."""
    request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS
    """Timeout of one Kubernetes API request."""


DEFAULT_LIMITS = PodLimits()
