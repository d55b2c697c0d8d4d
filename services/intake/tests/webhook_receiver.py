"""A real HTTP receiver on loopback for the webhook tests: it records every POST (headers and body) and
answers as the test says — 204, 500, a redirect, a 10 MB body, or no answer at all — and can go down and
come back on the same port."""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: str

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    mode: str = "ok"  # ok | error | redirect | huge | hang
    port: int = 0
    received: list[Received] = field(default_factory=list)
    requests: int = 0
    most_hanging: int = 0  # the most requests it held unanswered at once
    tls: ssl.SSLContext | None = None  # serve https with this context
    host: str = "127.0.0.1"  # the name in its URL
    _server: asyncio.AbstractServer | None = None
    _hanging: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/hooks"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Go down: refuse connections until `start` again (same port)."""
        if self._server is not None:
            self._server.close()
            for writer in self._hanging:
                writer.close()
            self._hanging.clear()
            await self._server.wait_closed()
            self._server = None

    def events(self, predicate=lambda e: True) -> list[dict[str, Any]]:
        return [r.event for r in self.received if predicate(r.event)]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests += 1
            mode = self.mode
            if mode == "hang":
                self._hanging.append(writer)
                self.most_hanging = max(self.most_hanging, len(self._hanging))
                await reader.read()  # never answer; until the sender gives up and closes the connection
                if writer in self._hanging:
                    self._hanging.remove(writer)
                return
            if mode == "ok":
                self.received.append(Received(headers, body.decode()))
                writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            elif mode == "error":
                writer.write(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops"
                )
            elif mode == "redirect":
                writer.write(
                    b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://169.254.169.254/latest\r\n"
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
            elif mode == "huge":
                size = 10 * 1024 * 1024
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode())
                chunk = b"x" * 65536
                for _ in range(size // len(chunk)):
                    writer.write(chunk)
                    await writer.drain()
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            if writer not in self._hanging:
                writer.close()
