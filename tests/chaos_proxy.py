"""A small asyncio TCP proxy that cuts connections on command (issue 15 item 4).

``ChaosProxy(target_port)`` listens on 127.0.0.1 and forwards every connection to the
target. While both processes stay alive it can, for the connections open at that
moment: ``drop`` (close both sides with FIN), ``reset`` (close with RST: SO_LINGER 0),
``half_close`` (end the target -> client direction only: the client reads EOF while
its own writes still go through), ``stall`` (hold the bytes for a while, then forward
them) and ``black_hole`` (for good: bytes are read and dropped, sockets stay open, no
answer ever comes, as when the path to a peer is lost). New connections are always
forwarded normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


class _Conn:
    def __init__(self, cr, cw, ur, uw) -> None:
        self.client_reader, self.client_writer = cr, cw
        self.up_reader, self.up_writer = ur, uw
        self.stalled_until = 0.0  # loop time
        self.swallow = False  # a black hole: bytes read and dropped
        self.tasks: list[asyncio.Task] = []

    def writers(self):
        return (self.client_writer, self.up_writer)


class ChaosProxy:
    """See the module docstring; ``await start()``, ``address``, ``await close()``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.conns: list[_Conn] = []
        self.cuts: list[str] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _accept(self, cr, cw) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.close()
            return
        conn = _Conn(cr, cw, ur, uw)
        self.conns.append(conn)
        conn.tasks = [
            asyncio.create_task(self._pump(conn, cr, uw)),
            asyncio.create_task(self._pump(conn, ur, cw)),
        ]

    async def _pump(self, conn: _Conn, reader, writer) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(65536):
                if conn.swallow:  # black hole for good: bytes vanish, nothing answers
                    continue
                while loop.time() < conn.stalled_until:  # a stall: bytes held, then sent
                    await asyncio.sleep(0.05)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, ConnectionError, asyncio.CancelledError):
            pass

    def _take(self) -> list[_Conn]:
        conns, self.conns = self.conns, []
        return conns

    def drop(self) -> None:
        self.cuts.append("drop")
        for c in self._take():
            for t in c.tasks:
                t.cancel()
            for w in c.writers():
                w.close()

    def reset(self) -> None:
        self.cuts.append("reset")
        for c in self._take():
            for t in c.tasks:
                t.cancel()
            for w in c.writers():
                sock = w.get_extra_info("socket")
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                w.transport.abort()

    def half_close(self) -> None:
        """The client reads EOF (target -> client ends); the client's bytes still flow."""
        self.cuts.append("half_close")
        for c in list(self.conns):
            c.tasks[1].cancel()
            with contextlib.suppress(OSError, RuntimeError):
                c.client_writer.write_eof()

    def stall(self, seconds: float) -> None:
        """Hold every byte of the open connections for ``seconds``, then forward them."""
        self.cuts.append(f"stall {seconds:g}s")
        until = asyncio.get_running_loop().time() + seconds
        for c in self.conns:
            c.stalled_until = until

    def black_hole(self) -> None:
        """The open connections go silent for good: both sides' bytes are taken and
        dropped (TCP still acknowledges them), as when the path to a peer is lost."""
        self.cuts.append("black_hole")
        for c in self.conns:
            c.swallow = True

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
