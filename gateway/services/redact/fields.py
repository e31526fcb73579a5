"""Redacting the named parts of answers: labels, structured metadata (of any depth) and Loki's
detected patterns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.services.redact.names import MASK, field_needs_mask
from gateway.services.redact.text import redact, redact_many


def redact_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """Label or structured-metadata values redacted: wholly when the name says it holds a secret
    (parsed labels such as `| json` turn a line's `db_password` field into a label), else as text."""
    return {k: MASK if field_needs_mask(k) else redact(v) for k, v in fields.items()}


def redact_patterns(patterns: list[Any]) -> list[Any]:
    """Loki's detected patterns (`{"pattern": "...", "samples": [...]}`, plus labels in newer
    versions) with pattern text and label values redacted like lines."""
    texts: list[str] = [
        p["pattern"] if isinstance(p, dict) and isinstance(p.get("pattern"), str) else "" for p in patterns
    ]
    masked = redact_many(texts)
    out: list[Any] = []
    for item, text in zip(patterns, masked, strict=True):
        if not isinstance(item, dict):
            out.append(item)
            continue
        item = {**item, "pattern": text} if isinstance(item.get("pattern"), str) else dict(item)
        for name in ("labels", "stream", "metric"):
            value = item.get(name)
            if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
                item[name] = redact_fields(value)
        out.append(item)
    return out


def redact_nested(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`redact_fields` for metadata of any depth, such as Loki's categorized labels
    (`{"structuredMetadata": {...}, "parsed": {...}}`): a string under a sensitive or unreadable
    name is masked whole, other strings are redacted as text, mappings and lists are walked."""
    return {name: _redact_value(name, value) for name, value in fields.items()}


def _redact_value(name: str, value: Any) -> Any:
    if isinstance(value, str):
        return MASK if field_needs_mask(name) else redact(value)
    if isinstance(value, Mapping):
        return redact_nested(value)
    if isinstance(value, list):
        return [_redact_value(name, item) for item in value]
    return value
