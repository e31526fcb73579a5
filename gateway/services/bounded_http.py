"""One HTTP exchange bounded as a whole. httpx's timeout bounds each connect, read and write: an
upstream that trickles its answer passes every one of those and holds the request for ever."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


async def request_within(
    http: httpx.AsyncClient, method: str, url: str, seconds: float, **kwargs: Any
) -> httpx.Response:
    """`http.request(...)` answered in full within `seconds`, else httpx.ReadTimeout."""
    try:
        async with asyncio.timeout(seconds):
            return await http.request(method, url, timeout=seconds, **kwargs)
    except TimeoutError as exc:
        raise httpx.ReadTimeout(f"no complete answer within {seconds:g}s") from exc
