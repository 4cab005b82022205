"""The connection pool: a queue pool that keeps its burst connections while the burst lasts."""

import asyncio
import time
from collections import deque
from typing import Any, Final, Self

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util.concurrency import await_
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty

# How long the pool must stay at or under pool_size before it closes the
# connections it opened above pool_size.
LINGER_SECONDS: Final = 30.0


class FairQueue(AsyncAdaptedQueue[ConnectionPoolEntry]):
    """The pool's idle connections, handed to waiting requests first come, first served.

    SQLAlchemy's asyncio queue lets a request that has just arrived take a
    returned connection ahead of those already waiting, and a waiter that loses
    this race queues again at the back, so under sustained overload some
    requests lose it again and again. Here a returned connection goes straight
    to the longest waiter, so every wait is bounded by the queue ahead of it
    (and by pool_timeout).
    """

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self._waiters: deque[asyncio.Future[ConnectionPoolEntry]] = deque()

    def put_nowait(self, item: ConnectionPoolEntry) -> None:
        """Give the connection to the longest waiter, or keep it when nobody waits."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        super().put_nowait(item)

    def get(self, block: bool = True, timeout: float | None = None) -> ConnectionPoolEntry:
        """Take an idle connection unless others wait already; else wait in line."""
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()  # gave up (timed out or cancelled)
        if not self._waiters:
            try:
                return self.get_nowait()
            except Empty:
                pass
        if not block:
            raise Empty()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await_(self._wait(waiter, seconds=timeout))
        except TimeoutError as error:
            raise Empty() from error

    async def _wait(
        self, waiter: asyncio.Future[ConnectionPoolEntry], *, seconds: float | None
    ) -> ConnectionPoolEntry:
        try:
            async with asyncio.timeout(seconds):
                return await waiter
        except BaseException:
            # Timed out or cancelled just as a connection arrived: pass it on
            # to the next in line instead of losing it.
            if waiter.done() and not waiter.cancelled():
                self.put_nowait(waiter.result())
            waiter.cancel()
            raise


class BurstPool(AsyncAdaptedQueuePool):
    """Up to pool_size + max_overflow connections, of which pool_size are kept for good.

    SQLAlchemy's QueuePool closes an overflow connection the moment it comes
    back whenever pool_size connections are idle, so a service whose load
    hovers above pool_size reconnects many times a second. Here a returned
    connection above pool_size is kept until the pool has not needed more than
    pool_size connections for LINGER_SECONDS.
    """

    # Log under sqlalchemy.pool like SQLAlchemy's own pools, so that the usual
    # logging configuration covers this one and the service's logger stays quiet.
    _sqla_logger_namespace = "sqlalchemy.pool.BurstPool"
    _queue_class = FairQueue

    def __init__(self, creator: Any, *, pool_size: int, max_overflow: int, **kw: Any) -> None:
        # Every connection, kept or not, lives in the queue; the overflow
        # counter of the base class then counts connections not yet opened.
        super().__init__(creator, pool_size=pool_size + max_overflow, max_overflow=0, **kw)
        self.kept = pool_size
        self.burst = max_overflow
        self._last_busy = float("-inf")

    def _do_get(self) -> ConnectionPoolEntry:
        record = super()._do_get()
        if self.checkedout() > self.kept:
            self._last_busy = time.monotonic()
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        quiet = time.monotonic() - self._last_busy > LINGER_SECONDS
        if quiet and self.checkedin() >= self.kept:
            try:
                record.close()
            finally:
                self._dec_overflow()
            return
        super()._do_return_conn(record)

    def overflow(self) -> int:
        """How many connections are open above pool_size right now."""
        # QueuePool's own counter means something else here (see __init__);
        # size() is left alone because QueuePool.dispose() relies on it.
        return max(self.checkedin() + self.checkedout() - self.kept, 0)

    def recreate(self) -> Self:
        """Build an empty pool with the same settings (engine.dispose() calls this)."""
        return self.__class__(
            self._creator,
            pool_size=self.kept,
            max_overflow=self.burst,
            timeout=self._timeout,
            use_lifo=self._pool.use_lifo,
            pre_ping=self._pre_ping,
            recycle=self._recycle,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            reset_on_return=self._reset_on_return,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )
