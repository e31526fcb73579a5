"""One HTTP exchange bounded as a whole, without ever cancelling httpx while it holds a pool slot
it cannot give back, and a gate that bounds how many exchanges run at once.

httpx's timeouts bound each pool wait, connect, write and read: an upstream that trickles its
answer passes every one of those and holds the request for ever, so the body is read under a total
deadline. The send (pool wait, connect, request, response head) is bounded by httpx's own timeouts
only: cancelling a task while httpcore's pool has just handed it a new connection leaves that
connection in the pool for good ("CONNECTING", owned by no request; encode/httpcore#1093, #830,
encode/httpx#1461), and a burst of such cancellations filled the 100-slot pool until every later
call timed out against a healthy Loki (issue 21). Cancelling while the body is read is safe:
httpcore's response stream closes its connection and hands the slot back on any exception.
These hazards are httpcore's, whose pool the shared client uses; the Loki pool runs on aiohttp
(gateway.services.aiohttp_network) under the same gate and the same whole-answer deadline, and
the issue-21 burst tests run on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx


async def request_within(
    http: httpx.AsyncClient, method: str, url: str, seconds: float, **kwargs: Any
) -> httpx.Response:
    """`http.request(...)` answered in full, else httpx.TimeoutException: the pool wait, connect,
    each write and the wait for the answer's head each within `seconds` (httpx's timeouts), and
    the whole exchange, body included, within `seconds` of the start."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    follow_redirects = kwargs.pop("follow_redirects", httpx.USE_CLIENT_DEFAULT)
    request = http.build_request(method, url, timeout=httpx.Timeout(seconds), **kwargs)
    response = await http.send(request, stream=True, follow_redirects=follow_redirects)
    try:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise httpx.ReadTimeout(f"no complete answer within {seconds:g}s", request=request)
        try:
            async with asyncio.timeout(remaining):
                await response.aread()
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no complete answer within {seconds:g}s", request=request) from exc
    except BaseException:
        await response.aclose()  # gives the connection back (closed) even when cancelled
        raise
    return response


class GateTimeout(Exception):
    """No slot came free within the gate's queue timeout."""

    def __init__(self, limit: int, waited: float) -> None:
        super().__init__(f"all {limit} slots stayed busy for {waited:g}s")
        self.limit = limit
        self.waited = waited


class ConcurrencyGate:
    """At most `limit` holders at once; a caller waits at most `queue_timeout` seconds for a slot,
    then gets GateTimeout (a fast "busy" instead of a queue that grows without end)."""

    def __init__(self, limit: int, queue_timeout: float) -> None:
        if limit < 1:
            raise ValueError("a gate needs at least one slot")
        self.limit = limit
        self._queue_timeout = queue_timeout
        self._slots = asyncio.Semaphore(limit)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._queue_timeout):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise GateTimeout(self.limit, self._queue_timeout) from exc
        try:
            yield
        finally:
            self._slots.release()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives its gate slot back when closed (once)."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._release is not None:
                self._release()
                self._release = None


class PoolGatedTransport(httpx.AsyncBaseTransport):
    """At most `slots` requests (from send to closed response) inside `inner`, `slots` being its
    pool size: a request waits for a free connection here, where a cancelled or timed-out wait
    leaks nothing, never in httpcore's pool queue, where even httpx's own pool timeout firing as
    a connection is handed over leaves that connection CONNECTING for good (in a burst of 400
    proxied calls under CPU load, 36 of 100). The wait is bounded by the request's pool timeout."""

    def __init__(self, inner: httpx.AsyncBaseTransport, slots: int) -> None:
        self.inner = inner
        self._slots = asyncio.Semaphore(slots)
        self.in_use = 0  # requests holding a slot: from send until their response is closed

    def _release(self) -> None:
        self.in_use -= 1
        self._slots.release()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool_timeout = request.extensions.get("timeout", {}).get("pool")
        try:
            async with asyncio.timeout(pool_timeout):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout(f"no free connection within {pool_timeout}s", request=request) from exc
        self.in_use += 1
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException:
            self._release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(response.stream, self._release),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
