"""The alert store in Redis (REDIS_URL), so every gateway replica sees the same notifications and
they survive a restart. Same behaviour as MemoryAlertStore: one entry per fingerprint, most
recently received first, the least recently received dropped beyond `max_entries` or beyond
`max_bytes` of entry JSON in all (the newest always stays).

Layout: one key per fingerprint holding the entry JSON, a sorted set fingerprint -> receive
order, and a counter of the entries' bytes. Updates are read-modify-write under WATCH of that one
key (retried with a short random pause on conflict), and move the counter by the entry's change in
size in the same transaction, so two replicas updating one alert never lose a change or a byte.
Trimming is one Lua script, so replicas trimming at once never count an entry twice.

Redis failures are translated here into AlertStoreUnavailable (503 with a hint), so the webhook
answers with the error envelope and Alertmanager retries, instead of a bare 500."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import RedisError, WatchError

from gateway.services.alerts.models import StoredAlert, WebhookAlert, WebhookPayload
from gateway.services.alerts.store import Change
from gateway.services.errors import UpstreamUnavailable

KEY_PREFIX = "gateway:alerts:"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# KEYS: order, bytes counter; ARGV: max entries, max bytes, entry key prefix. Drops the oldest
# entries (never the last one) until both bounds hold; answers how many it dropped.
TRIM_SCRIPT = """
local dropped = 0
while true do
  local count = redis.call('ZCARD', KEYS[1])
  local total = tonumber(redis.call('GET', KEYS[2]) or '0')
  if count <= 1 or (count <= tonumber(ARGV[1]) and total <= tonumber(ARGV[2])) then
    return dropped
  end
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  local key = ARGV[3] .. oldest
  redis.call('DECRBY', KEYS[2], redis.call('STRLEN', key))
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], oldest)
  dropped = dropped + 1
end
"""
MAX_WATCH_RETRIES = 50
CONFLICT_PAUSE_SECONDS = 0.005


class AlertStoreUnavailable(UpstreamUnavailable):
    def __init__(self, detail: str) -> None:
        super().__init__(
            "alert_store_unavailable",
            f"the alert store (Redis) failed: {detail}",
            "check REDIS_URL and that Redis runs; Alertmanager retries the notification",
        )


@contextmanager
def _redis_errors_translated() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise AlertStoreUnavailable(type(exc).__name__) from exc


class RedisAlertStore:
    def __init__(
        self, client: Any, max_entries: int, *, max_bytes: int = DEFAULT_MAX_BYTES, prefix: str = KEY_PREFIX
    ) -> None:  # redis.asyncio
        self._client = client
        self._max = max(1, max_entries)
        self._max_bytes = max_bytes
        self._entry_prefix = prefix + "entry:"
        self._order = prefix + "order"
        self._bytes = prefix + "bytes"
        self._trim_script = client.register_script(TRIM_SCRIPT)

    async def size_bytes(self) -> int:
        with _redis_errors_translated():
            return int(await self._client.get(self._bytes) or 0)

    def _key(self, fingerprint: str) -> str:
        return self._entry_prefix + fingerprint

    async def upsert(self, alert: WebhookAlert, payload: WebhookPayload) -> StoredAlert:
        with _redis_errors_translated():
            entry = await self._modify(
                alert.fingerprint,
                lambda previous: StoredAlert.received(alert, payload, previous),
                reorder=True,
            )
            await self._trim()
        assert entry is not None  # received() never returns None
        return entry

    async def update(self, fingerprint: str, change: Change) -> None:
        with _redis_errors_translated():
            await self._modify(
                fingerprint, lambda previous: None if previous is None else change(previous), reorder=False
            )

    async def list(self, status: str = "all", limit: int = 100) -> list[StoredAlert]:
        """Newest first, read `limit` entries at a time until enough match: a request for a few
        never reads the whole store (up to ALERTS_MAX_BYTES)."""
        chosen: list[StoredAlert] = []
        seen: set[bytes] = set()  # an entry moved up by another replica between two reads comes again
        start = 0
        while len(chosen) < limit and start < self._max:
            end = min(start + limit, self._max) - 1
            with _redis_errors_translated():
                fingerprints = list(await self._client.zrevrange(self._order, start, end))
                fresh = [fp for fp in fingerprints if fp not in seen]
                seen.update(fresh)
                raws = await self._client.mget([self._key(fp.decode()) for fp in fresh]) if fresh else []
            for raw in raws:
                if raw is None:
                    continue  # trimmed by another replica between the two reads
                entry = StoredAlert.load(json.loads(raw))
                if status == "all" or entry.status == status:
                    chosen.append(entry)
                    if len(chosen) >= limit:
                        break
            if len(fingerprints) < limit:
                break
            start += limit
        return chosen

    async def close(self) -> None:
        await self._client.aclose()

    async def _modify(
        self,
        fingerprint: str,
        change: Callable[[StoredAlert | None], StoredAlert | None],
        *,
        reorder: bool,
    ) -> StoredAlert | None:
        key = self._key(fingerprint)
        async with self._client.pipeline(transaction=True) as pipe:
            for _ in range(MAX_WATCH_RETRIES):
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    entry = change(None if raw is None else StoredAlert.load(json.loads(raw)))
                    if entry is None:
                        await pipe.reset()
                        return None
                    encoded = json.dumps(entry.dump()).encode()
                    pipe.multi()
                    pipe.set(key, encoded)
                    pipe.incrby(self._bytes, len(encoded) - len(raw or b""))
                    if reorder:
                        pipe.zadd(self._order, {fingerprint: time.time()})
                    await pipe.execute()
                    return entry
                except WatchError:
                    await asyncio.sleep(random.uniform(0, CONFLICT_PAUSE_SECONDS))
        raise AlertStoreUnavailable(f"alert {fingerprint} kept changing under {MAX_WATCH_RETRIES} attempts")

    async def _trim(self) -> None:
        await self._trim_script(
            keys=[self._order, self._bytes], args=[self._max, self._max_bytes, self._entry_prefix]
        )
