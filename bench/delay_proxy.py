"""A TCP proxy that holds every chunk for half a round trip in each direction, in order: a Loki
across a network, for benches on a kernel without `netem`. Latency only: the bandwidth is the
loopback's.

    with DelayProxy(loki_url, rtt_s=0.02) as url:
        ...  # point LOKI_URL at url
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from urllib.parse import urlsplit

CHUNK = 256 * 1024


class DelayProxy:
    def __init__(self, target_url: str, rtt_s: float) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._one_way = rtt_s / 2
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> str:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0), self._loop).result()
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _connection(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        upstream, to_upstream = await asyncio.open_connection(*self._target)
        try:
            await asyncio.gather(self._pipe(client, to_upstream), self._pipe(upstream, to_client),
                                 return_exceptions=True)
        except asyncio.CancelledError:
            pass  # the proxy is shutting down
        finally:
            for writer in (to_client, to_upstream):
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy reader to writer, each chunk sent `one_way` seconds after it arrived; an empty chunk
        is the end of the stream, passed on as a half-close."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - self._loop.time()))
                if not chunk:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(chunk)
                await writer.drain()

        delivering = asyncio.create_task(deliver())
        try:
            while chunk := await reader.read(CHUNK):
                queue.put_nowait((self._loop.time() + self._one_way, chunk))
        finally:
            queue.put_nowait((self._loop.time() + self._one_way, b""))
            await delivering
