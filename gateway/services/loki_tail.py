"""Loki's tail WebSocket relayed to a client: frames redacted and counted, the session bounded in
lines and time, and the sessions each key holds counted (every one takes one of Loki's tail slots,
`max_concurrent_tail_requests` per tenant)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from gateway.services.errors import RateLimited
from gateway.services.loki_compat import count_lines, redact_tail_message

TAIL_RETRY_AFTER_SECONDS = 10  # when a key holds all its tail sessions


class ClientSocket(Protocol):
    """The client's side of the relay (starlette's WebSocket, accepted)."""

    async def send_text(self, data: str) -> None: ...

    async def receive(self) -> Mapping[str, Any]: ...


def take_lines(streams: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The first `budget` entries of a tail frame."""
    kept: list[dict[str, Any]] = []
    for stream in streams:
        if budget <= 0:
            break
        values = stream.get("values") or []
        kept.append({**stream, "values": values[:budget]})
        budget -= len(values[:budget])
    return kept


async def relay(
    websocket: ClientSocket,
    upstream: ClientConnection,
    *,
    max_lines: int,
    max_seconds: float,
    redacting: bool,
) -> tuple[str, int]:
    """Loki's frames to the client (redacted, counted) until a side closes, the line budget is
    spent or the session's time is up. Returns (why it ended, lines relayed)."""
    sent = 0

    async def pump() -> str:
        nonlocal sent
        try:
            async for raw in upstream:
                message = orjson.loads(raw)
                if redacting:
                    message = redact_tail_message(message)
                streams = message.get("streams") or []
                if sent + count_lines(streams) > max_lines:
                    message = {**message, "streams": take_lines(streams, max_lines - sent)}
                sent += count_lines(message.get("streams") or [])
                await websocket.send_text(orjson.dumps(message).decode())
                if sent >= max_lines:
                    return "line limit"
        except ConnectionClosed:
            pass
        return "loki closed"

    async def watch_client() -> str:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
        return "client closed"

    tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(watch_client())]
    done, pending = await asyncio.wait(tasks, timeout=max_seconds, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if not done:
        return "time limit", sent
    finished = done.pop()
    error = finished.exception()
    if error is not None:
        return f"error: {type(error).__name__}", sent
    return finished.result(), sent


class TailSessions:
    """Open tail sessions per key on this replica, so that one key cannot take all of Loki's tail
    slots of its tenant."""

    def __init__(self, retry_after_seconds: int) -> None:
        self.open: Counter[str] = Counter()
        self.retry_after_seconds = retry_after_seconds

    def claim(self, key_id: str, per_key: int) -> None:
        if self.open[key_id] >= per_key:
            raise RateLimited(
                "too_many_tails",
                f"this key already has {self.open[key_id]} tail sessions open",
                f"close one first; a key may hold {per_key} at once",
                retry_after_seconds=self.retry_after_seconds,
            )
        self.open[key_id] += 1

    def release(self, key_id: str) -> None:
        self.open[key_id] -= 1
        if self.open[key_id] <= 0:
            del self.open[key_id]
