"""Mask secrets in log text before it leaves the gateway (returned lines, labels, patterns, LLM
prompts and summaries): `names` (which names hold secrets), `pairs` (name=value pairs), `rules`
(the ordered substitutions), `text` (redacting lines), `fields` (labels, metadata, patterns).

Every pattern here is RE2 (linear time whatever the line: Python's `re` backtracks quadratically
on lines such as 80 KB of `://a.a.a...`, which froze the event loop for minutes) and runs over
UTF-8 bytes, so a line is encoded once, not on each search.

Out of reach (see docs/redaction.md): a secret with no name or shape that marks it, and what a
query can compute from a secret without returning it (a line filter used as an oracle)."""

from __future__ import annotations

from gateway.services.redact.fields import redact_fields, redact_nested, redact_patterns
from gateway.services.redact.names import MASK, field_needs_mask, sensitive_name
from gateway.services.redact.text import redact, redact_many, substitute_all

__all__ = [
    "MASK",
    "field_needs_mask",
    "redact",
    "redact_fields",
    "redact_many",
    "redact_nested",
    "redact_patterns",
    "sensitive_name",
    "substitute_all",
]
