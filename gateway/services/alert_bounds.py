"""How big one stored alert may get (ALERTS_ENTRY_MAX_BYTES), and how big an entry is.

Every string an entry keeps from a notification (label and annotation names and values, the
generator URL, the group key, receiver and external URL) is cut to a share of that bound, ending in
a marker that says how much was cut; label and annotation keys beyond the bound are dropped and
counted under TRUNCATED_KEYS_ANNOTATION. A 4 MB annotation is stored as its first few KB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from gateway.services.alerts import WebhookAlert, WebhookPayload

VALUE_SHARE = 8  # one string may take at most this fraction of the entry's bound
KEY_MAX_BYTES = 256
TRUNCATED_KEYS_ANNOTATION = "gateway_truncated_keys"


def entry_bytes(entry: dict[str, Any]) -> int:
    """An entry's size as stored: its JSON bytes."""
    return len(orjson.dumps(entry))


def _cut(text: str, max_bytes: int) -> tuple[str, bool]:
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text, False
    kept = raw[:max_bytes].decode(errors="ignore")
    return f"{kept}…[truncated {len(raw) - len(kept.encode())} bytes]", True


class _Budget:
    def __init__(self, entry_max_bytes: int) -> None:
        self.left = entry_max_bytes
        self.value_max = entry_max_bytes // VALUE_SHARE
        self.cut = 0  # strings shortened
        self.dropped = 0  # keys dropped

    def text(self, value: str) -> str:
        short, was_cut = _cut(value, self.value_max)
        self.cut += was_cut
        self.left -= len(short.encode())
        return short

    def mapping(self, values: dict[str, str]) -> dict[str, str]:
        kept: dict[str, str] = {}
        for name, value in values.items():
            if self.left <= 0:
                self.dropped += 1
                continue
            short_name, name_cut = _cut(name, KEY_MAX_BYTES)
            self.cut += name_cut
            self.left -= len(short_name.encode())
            kept[short_name] = self.text(value)
        return kept


def bounded_payload(payload: WebhookPayload, entry_max_bytes: int) -> tuple[WebhookPayload, int]:
    """`payload` with every alert cut to `entry_max_bytes` (about: the marker and the entry's own
    fields come on top), and how many strings were cut or keys dropped (0: unchanged)."""
    budget = _Budget(entry_max_bytes)
    shared = {
        "groupKey": budget.text(payload.groupKey),
        "receiver": budget.text(payload.receiver),
        "externalURL": budget.text(payload.externalURL),
    }
    shared_left = budget.left
    alerts: list[WebhookAlert] = []
    for alert in payload.alerts:
        budget.left = shared_left
        labels = budget.mapping(alert.labels)
        annotations = budget.mapping(alert.annotations)
        generator_url = budget.text(alert.generatorURL)
        missing = len(alert.labels) - len(labels) + len(alert.annotations) - len(annotations)
        if missing:
            annotations[TRUNCATED_KEYS_ANNOTATION] = str(missing)
        update = {"labels": labels, "annotations": annotations, "generatorURL": generator_url}
        alerts.append(alert.model_copy(update=update))
    changed = budget.cut + budget.dropped
    if not changed:
        return payload, 0
    return payload.model_copy(update={**shared, "alerts": alerts}), changed
