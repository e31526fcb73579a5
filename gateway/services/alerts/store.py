"""The alert store's interface and its in-process form (RedisAlertStore: redis_store)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from gateway.services.alert_bounds import entry_bytes
from gateway.services.alerts.models import StoredAlert, WebhookAlert, WebhookPayload

DEFAULT_ALERTS_MAX_BYTES = 64 * 1024 * 1024
# an entry's change: applied to the stored entry, read and written as one step
Change = Callable[[StoredAlert], StoredAlert]


class AlertStore(Protocol):
    async def upsert(self, alert: WebhookAlert, payload: WebhookPayload) -> StoredAlert: ...

    async def update(self, fingerprint: str, change: Change) -> None:
        """`change` applied to the entry of `fingerprint`; nothing when there is none (anymore)."""
        ...

    async def list(self, status: str = "all", limit: int = 100) -> list[StoredAlert]: ...

    async def close(self) -> None: ...


class MemoryAlertStore:
    """Most recently updated first; the least recently updated entries go when there are more
    than `max_entries` or their JSON takes more than `max_bytes` (the newest always stays)."""

    def __init__(self, max_entries: int, *, max_bytes: int = DEFAULT_ALERTS_MAX_BYTES) -> None:
        self._entries: OrderedDict[str, StoredAlert] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        self._max = max(1, max_entries)
        self._max_bytes = max_bytes
        self._lock = asyncio.Lock()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    async def upsert(self, alert: WebhookAlert, payload: WebhookPayload) -> StoredAlert:
        async with self._lock:
            entry = StoredAlert.received(alert, payload, self._entries.pop(alert.fingerprint, None))
            self._put(entry)
            while len(self._entries) > 1 and (
                len(self._entries) > self._max or self._bytes > self._max_bytes
            ):
                oldest, _ = self._entries.popitem(last=False)
                self._bytes -= self._sizes.pop(oldest)
            return entry

    async def update(self, fingerprint: str, change: Change) -> None:
        async with self._lock:
            entry = self._entries.get(fingerprint)
            if entry is not None:
                self._put(change(entry))

    def _put(self, entry: StoredAlert) -> None:
        """Stored (or replaced in place, keeping its place in the order) and its bytes counted."""
        self._entries[entry.fingerprint] = entry
        size = entry_bytes(entry.dump())
        self._bytes += size - self._sizes.get(entry.fingerprint, 0)
        self._sizes[entry.fingerprint] = size

    async def list(self, status: str = "all", limit: int = 100) -> list[StoredAlert]:
        async with self._lock:
            newest_first = reversed(self._entries.values())
            chosen = [e for e in newest_first if status == "all" or e.status == status]
        return chosen[:limit]

    async def close(self) -> None:
        self._entries.clear()
        self._sizes.clear()
        self._bytes = 0
