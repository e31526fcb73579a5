"""The sizes a GCS pass reads and cuts by: one frozen object handed to the source, so that a test
(or a caller) sets a limit instead of patching a module constant."""

from __future__ import annotations

from dataclasses import dataclass

from shipper.models import MAX_UNCOMMITTED_SPAN_NS

DEFAULT_BATCH_RECORDS = 1000
MAX_LINE_READ_BYTES = 1 << 20  # a longer line is cut here (counted); Loki would refuse it anyway
MAX_DOCUMENT_OBJECT_BYTES = 16 << 20  # a single JSON *object* document is parsed whole; bounded
BINARY_SNIFF_BYTES = 8192
FIRST_RECORD_PEEK_BYTES = 4096  # ranged read of a new object's start, for its first timestamp
CHECK_LIST_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class GcsLimits:
    max_line_read_bytes: int = MAX_LINE_READ_BYTES
    """A longer line is cut here and counted `truncated`."""
    max_document_object_bytes: int = MAX_DOCUMENT_OBJECT_BYTES
    """A single JSON object document (parsed whole) larger than this, stored or inflated, is skipped
    and counted `document_too_large`."""
    binary_sniff_bytes: int = BINARY_SNIFF_BYTES
    """How much of an object's start decides whether it is binary, lines or a JSON document."""
    first_record_peek_bytes: int = FIRST_RECORD_PEEK_BYTES
    """The ranged read of a new object's start that gives its first record's timestamp."""
    max_batch_span_ns: int = MAX_UNCOMMITTED_SPAN_NS
    """A batch's records span less than this (models.MAX_UNCOMMITTED_SPAN_NS says why)."""
    check_list_limit: int = CHECK_LIST_LIMIT
    """`check` counts at most this many objects per prefix."""


DEFAULT_LIMITS = GcsLimits()
