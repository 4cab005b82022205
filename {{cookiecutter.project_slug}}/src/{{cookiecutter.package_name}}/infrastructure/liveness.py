"""Never hand a request a connection the server has closed, without a round trip per checkout.

Every checkout asks the driver whether the connection is closed, and the
socket whether the server has sent anything while the connection sat idle in
the pool: an idle connection hears from the server only when it is being shut
down (a terminated backend, a restart, a failover), and the driver reads that
message only when the event loop next gets to the socket. Only a connection
with something unread, or one idle for longer than PING_AFTER_IDLE_SECONDS
(when pre-ping is on), is pinged. A dead one makes the pool open a fresh
connection in its place before the request sees it.
"""

from __future__ import annotations

import select
import time
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

# A connection idle for longer than this is pinged before a request uses it:
# a server or network in between may have dropped it without a word.
PING_AFTER_IDLE_SECONDS: Final = 1.0

# What the pool keeps about each connection: when it was last in use, and a
# poller for its socket, built once when it connects.
_LAST_USED: Final = "last_used"
_SOCKET: Final = "socket_poller"


def guard_checkouts(engine: AsyncEngine, *, ping_idle: bool) -> None:
    """Make `engine`'s pool replace a dead connection at checkout instead of handing it out."""
    dialect = engine.dialect

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        # Just used, by the handshake: a new connection needs no ping.
        record.info[_LAST_USED] = time.monotonic()
        record.info[_SOCKET] = socket_poller(dbapi_connection.driver_connection)

    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if is_closed(dbapi_connection.driver_connection):
            raise DisconnectionError("the connection was closed while in the pool")
        poller: select.poll | None = record.info.get(_SOCKET)
        idle = time.monotonic() - record.info.get(_LAST_USED, 0.0)
        if (ping_idle and idle > PING_AFTER_IDLE_SECONDS) or (poller and poller.poll(0)):
            try:
                dialect.do_ping(dbapi_connection)
            except Exception as error:
                # The pool opens a new connection in this one's place.
                raise DisconnectionError(str(error)) from error

    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "checkout", on_checkout)
    event.listen(engine.sync_engine, "checkin", on_checkin)


def is_closed(driver_connection: Any) -> bool:
    """Whether the driver already knows its connection is closed (asyncpg does; SQLite has none)."""
    closed = getattr(driver_connection, "is_closed", None)
    return bool(closed()) if callable(closed) else False


def socket_poller(driver_connection: Any) -> select.poll | None:
    """A poller that finds bytes, or the end of the stream, unread on the connection's socket."""
    # asyncpg keeps its transport private; SQLite has no socket, Windows no poll.
    transport = getattr(driver_connection, "_transport", None)
    socket = transport.get_extra_info("socket") if transport is not None else None
    if socket is None or not hasattr(select, "poll"):
        return None
    poller = select.poll()
    poller.register(socket.fileno(), select.POLLIN)
    return poller
