"""Loki's HTTP query API: `client` (LokiClient), `errors` (the kinds a call fails with) and
`answers` (reading its `streams` answers)."""

from __future__ import annotations

from gateway.services.loki.answers import (
    METADATA_CATEGORIES,
    Entry,
    count_entries,
    entry_metadata,
    metric_series,
    sorted_entries,
)
from gateway.services.loki.client import (
    CATEGORIZE_LABELS_HEADERS,
    DEFAULT_PAGE_SIZE,
    FORBIDDEN_FORWARD_HEADERS,
    TENANT_HEADER,
    LokiClient,
    max_entries_per_query,
    strip_forbidden_headers,
)
from gateway.services.loki.errors import (
    LokiBadRequest,
    LokiBusy,
    LokiError,
    LokiQueueFull,
    LokiTimeout,
    LokiUnavailable,
    LokiUpstreamError,
    TooManyAtOneTimestamp,
)

__all__ = [
    "CATEGORIZE_LABELS_HEADERS",
    "DEFAULT_PAGE_SIZE",
    "FORBIDDEN_FORWARD_HEADERS",
    "METADATA_CATEGORIES",
    "TENANT_HEADER",
    "Entry",
    "LokiBadRequest",
    "LokiBusy",
    "LokiClient",
    "LokiError",
    "LokiQueueFull",
    "LokiTimeout",
    "LokiUnavailable",
    "LokiUpstreamError",
    "TooManyAtOneTimestamp",
    "count_entries",
    "entry_metadata",
    "max_entries_per_query",
    "metric_series",
    "sorted_entries",
    "strip_forbidden_headers",
]
