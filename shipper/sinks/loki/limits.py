"""Loki's default ingestion limits, enforced before sending so that a push is not refused for
something we can fix ourselves. Each adjustment is counted (shipper_records_adjusted{reason}).

Choices:
- Lines longer than MAX_LINE_BYTES (Loki's `max_line_size`, 256 KiB) are *truncated*, not split:
  the kept part ends with TRUNCATION_MARKER naming how many bytes were cut, so a reader sees that the
  line is incomplete, the entry keeps its own timestamp (a split would need invented timestamps or
  several entries sharing one) and the cut is deterministic, so a resend deduplicates in Loki.
- At most MAX_LABELS stream labels (Loki's `max_label_names_per_series`). The labels of
  PRIORITY_LABELS (the label schema of DESIGN.md) are kept first, then the others by name; the
  rest move to structured metadata, where nothing is lost and cardinality does not matter.
- Label names are sanitised to `[a-zA-Z_][a-zA-Z0-9_]*` (each other character becomes `_`,
  a leading digit gets a `_` prefix); label values longer than MAX_LABEL_VALUE_CHARS are cut.
  A label with an empty value is dropped: Prometheus label semantics treat it as absent.
- Timestamps more than MAX_FUTURE_NS ahead of now (Loki's `creation_grace_period`) are clamped to
  now and the original value is kept in structured metadata (ORIGINAL_TS_KEY). The clamped
  timestamp depends on the time of sending, so a resend of such a record is not deduplicated.
- Records older than the configured max age (Loki's `reject_old_samples_max_age`) are not sent;
  they are returned as rejected with reason `too_old` and counted as skipped.
"""

from __future__ import annotations

import re
from functools import lru_cache

from shipper import loki_defaults

MAX_LINE_BYTES = loki_defaults.MAX_LINE_BYTES
MAX_LABELS = 15
MAX_LABEL_NAME_CHARS = 1024
MAX_LABEL_VALUE_CHARS = 2048
MAX_FUTURE_NS = 10 * 60 * 1_000_000_000
TRUNCATION_MARKER = " …[truncated by shipper: {cut} bytes]"
ORIGINAL_TS_KEY = "original_timestamp"
FALLBACK_SERVICE_NAME = "unknown_service"  # what Loki itself uses for a stream without one

# Kept first when a record has more than MAX_LABELS labels (DESIGN.md's label schema).
PRIORITY_LABELS = (
    "source", "service_name", "level", "bucket", "prefix", "collection", "namespace", "pod",
    "container", "kind",
)

_VALID_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_]")

# Adjustment reasons (shipper_records_adjusted{reason}); a bounded vocabulary.
TRUNCATED = "truncated"
TIMESTAMP_CLAMPED = "timestamp_clamped"
LABELS_SANITISED = "labels_sanitised"
LABELS_DROPPED = "labels_dropped"
INVALID_UTF8 = "invalid_utf8"


@lru_cache(maxsize=4096)
def sanitise_label_name(name: str) -> str:
    """A Prometheus-valid label name for `name` (identity for valid names)."""
    if _VALID_NAME.fullmatch(name) and len(name) <= MAX_LABEL_NAME_CHARS:
        return name
    cleaned = _INVALID_CHARS.sub("_", name)[:MAX_LABEL_NAME_CHARS] or "_"
    if cleaned[0].isdigit():
        cleaned = "_" + cleaned[: MAX_LABEL_NAME_CHARS - 1]
    return cleaned


def truncate_line(line: str, line_bytes: int, max_bytes: int) -> str:
    """Cut `line` (of `line_bytes` UTF-8 bytes) to at most `max_bytes` bytes including the marker,
    on a character boundary."""
    marker_budget = len(TRUNCATION_MARKER.format(cut=line_bytes).encode())
    keep = max(0, max_bytes - marker_budget)
    kept = line.encode("utf-8", "replace")[:keep].decode("utf-8", "ignore")
    cut = line_bytes - len(kept.encode())
    return kept + TRUNCATION_MARKER.format(cut=cut)


def label_priority(name: str) -> tuple[int, str]:
    try:
        return (PRIORITY_LABELS.index(name), name)
    except ValueError:
        return (len(PRIORITY_LABELS), name)
