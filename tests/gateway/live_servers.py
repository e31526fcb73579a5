"""Real servers on 127.0.0.1 for tests where concurrency must be real (sockets, pools, uvicorn):

- `ThreadedUvicorn(app)`: an ASGI app served by uvicorn on its own event loop in a thread;
  `.url`, `.call(coro_fn)` runs a coroutine on the server's loop (to reach the app's own clients),
  stopped on exit.
- `DelayingLoki(upstream)`: an ASGI app standing in for Loki where a real Loki cannot be made slow
  (or set cookies) on demand: every request waits `delay` seconds, then is answered with what the
  real Loki at `upstream` answers to it (status, content type and body), so every answer is in
  Loki's own format.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.conftest import free_port

T = TypeVar("T")
START_TIMEOUT_SECONDS = 20.0


class ThreadedUvicorn:
    def __init__(self, app: ASGIApp, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
            backlog=4096, timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve()

        asyncio.run(serve())

    def __enter__(self) -> ThreadedUvicorn:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    async def call(self, make: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """Await `make()` on the server's own event loop (where the app's clients live)."""
        assert self._loop is not None

        async def run() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)


class DelayingLoki:
    """ASGI: wait `delay` seconds, then pass the request on to the real Loki and its answer back,
    with `set_cookie` as a Set-Cookie header when given; the Cookie header of every request is
    kept in `cookies_seen`."""

    def __init__(self, upstream: str, *, set_cookie: str | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = 0.0
        self.requests = 0
        self.set_cookie = set_cookie
        self.cookies_seen: list[str | None] = []
        self._http: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert scope["type"] == "http"
        self.requests += 1
        cookies = [v.decode() for k, v in scope["headers"] if k.lower() == b"cookie"]
        self.cookies_seen.append("; ".join(cookies) or None)
        if self.delay:
            await asyncio.sleep(self.delay)
        assert self._http is not None
        query = scope.get("query_string", b"").decode()
        url = self.upstream + scope["path"] + (f"?{query}" if query else "")
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.lower() != b"host"]
        answer = await self._http.request(scope["method"], url, headers=headers)
        answer_headers = [(b"content-type", answer.headers.get("content-type", "text/plain").encode())]
        if self.set_cookie:
            answer_headers.append((b"set-cookie", self.set_cookie.encode()))
        await send({"type": "http.response.start", "status": answer.status_code, "headers": answer_headers})
        await send({"type": "http.response.body", "body": answer.content})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "lifespan.startup":
                self._http = httpx.AsyncClient(
                    timeout=60, limits=httpx.Limits(max_connections=500, max_keepalive_connections=500)
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._http is not None:
                    await self._http.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


Behaviour = Literal["hang_up", "reset", "half_answer", "silent"]
HALF_ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
               b'{"status":"success","data":{"resultType":"streams","result":[')


class MisbehavingUpstream:
    """Accepts connections on 127.0.0.1, reads one request head on each, then misbehaves."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.requests = 0
        self._stopping = threading.Event()
        self._held: list[socket.socket] = []  # "silent" connections, closed on exit
        self._thread = threading.Thread(target=self._serve, name=f"misbehaving-{behaviour}", daemon=True)

    def __enter__(self) -> MisbehavingUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        for connection in self._held:
            connection.close()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        connection.settimeout(5)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            if not chunk:
                connection.close()
                return
            received += chunk
        self.requests += 1
        if self.behaviour == "silent":
            self._held.append(connection)
            return
        if self.behaviour == "reset":  # SO_LINGER 0: close() sends RST instead of FIN
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif self.behaviour == "half_answer":
            connection.sendall(HALF_ANSWER)
        connection.close()
