"""A TCP proxy in front of PostgreSQL that counts what clients send, message by message.

Counting the frontend protocol gives exact figures for "statements per request"
(Execute and simple Query messages) and "round trips per request" (Sync and
simple Query messages, each of which waits for the server), whatever the driver.
"""

import asyncio
import struct
from collections import Counter

# Untyped messages a client may send before its startup packet.
_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


class CountingProxy:
    """Forward connections to PostgreSQL and count the frontend message types."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.messages: Counter[str] = Counter()
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def reset(self) -> None:
        self.messages.clear()

    @property
    def statements(self) -> int:
        return self.messages["E"] + self.messages["Q"]

    @property
    def round_trips(self) -> int:
        return self.messages["S"] + self.messages["Q"]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        await asyncio.gather(
            self._client_to_server(reader, up_writer),
            self._pipe(up_reader, writer),
            return_exceptions=True,
        )

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            # Untyped: SSL/GSS requests, then the startup packet.
            while True:
                length_bytes = await reader.readexactly(4)
                (length,) = struct.unpack("!i", length_bytes)
                body = await reader.readexactly(length - 4)
                writer.write(length_bytes + body)
                await writer.drain()
                (code,) = struct.unpack("!i", body[:4])
                if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                    break
            while True:
                head = await reader.readexactly(5)
                kind = chr(head[0])
                (length,) = struct.unpack("!i", head[1:])
                body = await reader.readexactly(length - 4)
                self.messages[kind] += 1
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
