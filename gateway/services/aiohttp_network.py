"""The Loki pool's network layer: aiohttp under httpx (httpx-aiohttp), with aiohttp's errors mapped
to the httpx errors httpx's own transport raises for the same failure, and no cookie jar.

httpx-aiohttp's default aiohttp session keeps the cookies answers set (for host names, not IP
addresses) and sends them on every later request: a cookie set in an answer to one caller (a
proxy in front of Loki, say) would ride along on every other caller's queries, whatever their
tenant. The gateway's httpx clients accept no cookie (gateway.wiring.http_client); this session
keeps none either (aiohttp.DummyCookieJar).

httpx-aiohttp 0.2 maps every aiohttp.ClientConnectionError to httpx.ConnectTimeout, and its more
specific entries never win over that one (openai/openai-python#3594 review): a refused
connection, a Loki that hangs up or resets would all read as a timeout, and the gateway would
answer `loki_timeout` ("narrow the query") to a Loki that is down. Here only aiohttp's timeouts
stay timeouts; a failed connect is httpx.ConnectError, a dropped connection httpx.ReadError or
httpx.RemoteProtocolError - all "Loki is not reachable" to the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's own


@contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except httpx.TransportError as exc:
        cause = exc.__cause__
        if isinstance(cause, TimeoutError) or not isinstance(cause, aiohttp.ClientConnectionError):
            raise  # a timeout (aiohttp's are TimeoutErrors), or mapped right already
        message = f"{type(cause).__name__}: {cause}"
        if isinstance(cause, aiohttp.ClientConnectorError):  # refused, unknown host: never connected
            raise httpx.ConnectError(message, request=request) from cause
        if isinstance(cause, aiohttp.ServerDisconnectedError):  # closed without (a whole) answer
            raise httpx.RemoteProtocolError(message, request=request) from cause
        raise httpx.ReadError(message, request=request) from cause  # reset, other socket errors


class _MappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(self._request):
            async for chunk in self._inner:
                yield chunk

    async def aclose(self) -> None:
        with _mapped(self._request):
            await self._inner.aclose()


class MappedAiohttpTransport(AiohttpTransport):
    def __init__(self, *, limits: httpx.Limits = DEFAULT_LIMITS) -> None:
        super().__init__(limits=limits, client=self._new_session)

    def _new_session(self) -> aiohttp.ClientSession:
        """What httpx-aiohttp builds, without a cookie jar (made on the first request, in its loop)."""
        connector = aiohttp.TCPConnector(limit=self.limits.max_connections or 0,
                                         keepalive_timeout=self.limits.keepalive_expiry, ssl=self.ssl_context)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _mapped(request):
            response = await super().handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _MappedStream(response.stream, request)
        return response
