"""A TCP fault proxy on 127.0.0.1 (listen -> upstream) with toxics that can be switched at runtime.

Modelled on Toxiproxy, in-process: an asyncio loop in its own thread forwards bytes both ways.  Toxics:

- ``limit_data(n)``: each new connection is cut after ``n`` bytes went downstream (upstream -> client);
  ``reset=True`` cuts with a TCP RST instead of a FIN.
- ``reset_peer()``: reset every open connection now and each new one on arrival (until ``clear()``).
- ``stall()``: stop forwarding in both directions but keep the sockets open (until ``clear()``).
- ``latency(ms)``: delay every forwarded chunk by ``ms`` milliseconds.

:attr:`TcpProxy.connections` counts accepted connections, :attr:`TcpProxy.active` the open ones.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from types import TracebackType

from devstack.net import LOOPBACK

log = logging.getLogger(__name__)
_CHUNK = 65536


class _Conn:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.downstream_bytes = 0
        self.limit: int | None = None
        self.limit_reset = False

    def reset(self) -> None:
        for writer in (self.client, self.upstream):
            if writer.transport.is_closing():
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            writer.close()


class TcpProxy:
    """Listen on 127.0.0.1 (:attr:`port`, free by default) and forward to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int = 0,
                 connect_timeout: float = 5.0) -> None:
        self.host = LOOPBACK
        self.port = port
        self.upstream = (upstream_host, upstream_port)
        self.connect_timeout = connect_timeout
        self.connections = 0
        self._limit: int | None = None
        self._limit_reset = False
        self._reset_new = False
        self._latency = 0.0
        self._conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._flowing: asyncio.Event | None = None

    @property
    def active(self) -> int:
        return len(self._conns)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> TcpProxy:
        if self._thread is not None:
            return self
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="devstack-tcpproxy",
                                        daemon=True)
        self._thread.start()
        if not ready.wait(10) or self._server is None:
            raise RuntimeError(f"the TCP proxy could not listen on {self.host}:{self.port}")
        log.info("tcp proxy %s:%s -> %s:%s", self.host, self.port, *self.upstream)
        return self

    def _run(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._flowing = asyncio.Event()
        self._flowing.set()
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve, self.host, self.port))
            self.port = self._server.sockets[0].getsockname()[1]
        finally:
            ready.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        except (FutureTimeout, RuntimeError):
            log.warning("tcp proxy shutdown timed out")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = self._server = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.reset()
        self._conns.clear()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ----------------------------------------------------------------- toxics
    def _call(self, func: object) -> None:
        if self._loop is None:
            raise RuntimeError("the TCP proxy is not running")
        self._loop.call_soon_threadsafe(func)  # type: ignore[arg-type]

    def limit_data(self, n: int, *, reset: bool = False) -> None:
        """Cut each new connection after ``n`` downstream bytes (RST if ``reset``, else FIN)."""
        if n < 0:
            raise ValueError("The data limit must not be negative")
        self._limit, self._limit_reset = n, reset

    def reset_peer(self) -> None:
        """Reset all open connections now and every new one until :meth:`clear`."""
        self._reset_new = True

        def reset_all() -> None:
            for conn in list(self._conns):
                conn.reset()

        self._call(reset_all)

    def stall(self) -> None:
        """Stop forwarding (sockets stay open) until :meth:`clear`."""
        self._call(lambda: self._flowing.clear() if self._flowing else None)

    def latency(self, ms: float) -> None:
        if ms < 0:
            raise ValueError("The latency must not be negative")
        self._latency = ms / 1000.0

    def clear(self) -> None:
        """Remove all toxics; stalled data flows again."""
        self._limit, self._limit_reset, self._reset_new, self._latency = None, False, False, 0.0
        self._call(lambda: self._flowing.set() if self._flowing else None)

    # ----------------------------------------------------------------- forwarding
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), self.connect_timeout)
        except (TimeoutError, OSError) as exc:
            log.warning("tcp proxy: upstream %s:%s unreachable: %s", *self.upstream, exc)
            writer.close()
            return
        conn = _Conn(writer, up_writer)
        conn.limit, conn.limit_reset = self._limit, self._limit_reset
        self._conns.add(conn)
        if self._reset_new:
            conn.reset()
            self._conns.discard(conn)
            return
        try:
            await asyncio.gather(self._pump(reader, up_writer, conn, downstream=False),
                                 self._pump(up_reader, writer, conn, downstream=True))
        except asyncio.CancelledError:
            conn.reset()  # the proxy is stopping; a quiet end instead of a logged CancelledError
        finally:
            self._conns.discard(conn)
            conn.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Conn,
                    downstream: bool) -> None:
        assert self._flowing is not None
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                if self._latency:
                    await asyncio.sleep(self._latency)
                if downstream and conn.limit is not None:
                    room = conn.limit - conn.downstream_bytes
                    if len(data) >= room:
                        writer.write(data[:room])
                        await writer.drain()
                        conn.downstream_bytes += room
                        if conn.limit_reset:
                            conn.reset()
                        else:
                            conn.close()
                        return
                    conn.downstream_bytes += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if writer.can_write_eof() and not writer.is_closing():
                try:
                    writer.write_eof()
                except OSError:
                    writer.close()
            else:
                writer.close()
