"""The alert store in Redis (REDIS_URL), so every gateway replica sees the same notifications and
they survive a restart. Same behaviour as MemoryAlertStore: one entry per fingerprint, most
recently received first, the least recently received dropped beyond `max_entries`.

Layout: one key per fingerprint holding the entry JSON, and a sorted set fingerprint -> receive
order. Updates are read-modify-write under WATCH of that one key (retried with a short random
pause on conflict), so two replicas updating one alert never lose a change.

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

from gateway.errors import ApiError
from gateway.services.alerts import WebhookAlert, WebhookPayload, new_entry

KEY_PREFIX = "gateway:alerts:"
MAX_WATCH_RETRIES = 50
CONFLICT_PAUSE_SECONDS = 0.005


class AlertStoreUnavailable(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            503,
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
    def __init__(self, client: Any, max_entries: int, *, prefix: str = KEY_PREFIX) -> None:  # redis.asyncio
        self._client = client
        self._max = max(1, max_entries)
        self._entry_prefix = prefix + "entry:"
        self._order = prefix + "order"

    def _key(self, fingerprint: str) -> str:
        return self._entry_prefix + fingerprint

    async def upsert(self, alert: WebhookAlert, payload: WebhookPayload) -> dict[str, Any]:
        with _redis_errors_translated():
            entry = await self._modify(
                alert.fingerprint, lambda previous: new_entry(alert, payload, previous), reorder=True
            )
            await self._trim()
        assert entry is not None  # new_entry never returns None
        return entry

    async def update(self, fingerprint: str, fields: dict[str, Any]) -> None:
        with _redis_errors_translated():
            await self._modify(
                fingerprint, lambda previous: None if previous is None else {**previous, **fields},
                reorder=False,
            )

    async def list(self, status: str = "all", limit: int = 100) -> list[dict[str, Any]]:
        with _redis_errors_translated():
            fingerprints = await self._client.zrevrange(self._order, 0, self._max - 1)
            keys = [self._key(fp.decode()) for fp in fingerprints]
            raws = await self._client.mget(keys) if keys else []
        chosen: list[dict[str, Any]] = []
        for raw in raws:
            if raw is None:
                continue  # trimmed by another replica between the two reads
            entry = json.loads(raw)
            if status == "all" or entry["status"] == status:
                chosen.append(entry)
                if len(chosen) >= limit:
                    break
        return chosen

    async def close(self) -> None:
        await self._client.aclose()

    async def _modify(
        self,
        fingerprint: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        *,
        reorder: bool,
    ) -> dict[str, Any] | None:
        key = self._key(fingerprint)
        async with self._client.pipeline(transaction=True) as pipe:
            for _ in range(MAX_WATCH_RETRIES):
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    entry = change(None if raw is None else json.loads(raw))
                    if entry is None:
                        await pipe.reset()
                        return None
                    pipe.multi()
                    pipe.set(key, json.dumps(entry))
                    if reorder:
                        pipe.zadd(self._order, {fingerprint: time.time()})
                    await pipe.execute()
                    return entry
                except WatchError:
                    await asyncio.sleep(random.uniform(0, CONFLICT_PAUSE_SECONDS))
        raise AlertStoreUnavailable(f"alert {fingerprint} kept changing under {MAX_WATCH_RETRIES} attempts")

    async def _trim(self) -> None:
        excess = await self._client.zrange(self._order, 0, -(self._max + 1))
        if excess:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zrem(self._order, *excess)
                pipe.delete(*(self._key(fp.decode()) for fp in excess))
                await pipe.execute()
