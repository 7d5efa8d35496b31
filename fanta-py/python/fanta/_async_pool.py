"""AsyncPool: the pool for asyncio, built on the native Pool and CompletionQueue.

A request is submitted to the pool's Rust runtime at once, with an asyncio future
to resolve. Runtime threads push results, without the GIL, into a CompletionQueue
whose file descriptor the event loop watches. One loop wake-up drains every result
queued since the last one, and no thread is blocked per request.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from typing import Any, Dict, Optional, Sequence, Union

from . import _fanta
from ._errors import PoolClosedError

__all__ = ["AsyncPool"]


class AsyncPool:
    """A pool of multiplexed connections for asyncio code.

    Takes the same arguments as :class:`fanta.Pool`. An AsyncPool belongs to the
    event loop that first uses it (``async with`` or the first request); using it
    from another loop raises ``RuntimeError``. It needs a loop that supports
    ``add_reader`` (the default loop on Unix, and uvloop).
    """

    def __init__(
        self,
        addresses: Union[str, Sequence[str]],
        *,
        size: int = 4,
        strategy: str = "round_robin",
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        max_in_flight: int = 1024,
        wait_for_connection: bool = True,
    ) -> None:
        self._pool = _fanta.Pool(
            addresses,
            size=size,
            strategy=strategy,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_in_flight=max_in_flight,
            wait_for_connection=wait_for_connection,
        )
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._queue: Optional[_fanta.CompletionQueue] = None
        self._futures: Dict[int, asyncio.Future[bytes]] = {}
        self._request_ids = itertools.count(1)

    async def request(self, payload: Union[bytes, bytearray, memoryview], *, timeout: Optional[float] = None) -> bytes:
        """Send ``payload`` and return the response payload.

        ``timeout`` (seconds) overrides the pool's default deadline. Cancelling
        the awaiting task cancels the request; a response that arrives later is
        dropped. Raises the same exceptions as :meth:`fanta.Pool.request`.
        """
        queue = self._bind_loop()
        future: asyncio.Future[bytes] = self._loop.create_future()  # type: ignore[union-attr]
        request_id = next(self._request_ids)
        handle = self._pool._submit_to(queue, request_id, payload, timeout=timeout)
        self._futures[request_id] = future

        try:
            return await future
        except asyncio.CancelledError:
            handle.cancel()
            raise
        finally:
            self._futures.pop(request_id, None)

    async def wait_connected(self, count: Optional[int] = None, *, timeout: float = 5.0) -> bool:
        """Wait until ``count`` connections (default: all configured) are connected.

        Returns whether they are before ``timeout`` seconds pass. Checks every 10 ms.
        """
        if count is None:
            count = self._pool.stats()["configured"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._pool.stats()["connected"] < count:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def stats(self) -> Dict[str, Any]:
        """Return :meth:`fanta.Pool.stats` plus ``loop_wakeups``.

        ``loop_wakeups`` counts event loop wake-ups that delivered results; under
        load it is far below the number of requests.
        """
        stats = self._pool.stats()
        stats["loop_wakeups"] = self._queue.wakeups if self._queue is not None else 0
        return stats

    def close(self) -> None:
        """Close the pool and fail every pending request with PoolClosedError. Idempotent."""
        self._pool.close()
        if self._loop is not None and self._queue is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._queue.fileno())
        self._queue = None

        pending = list(self._futures.values())
        self._futures.clear()
        for future in pending:
            if not future.done():
                future.set_exception(PoolClosedError("pool closed"))

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._pool.closed

    @property
    def addresses(self) -> list[str]:
        """The configured "host:port" addresses."""
        return self._pool.addresses

    async def __aenter__(self) -> AsyncPool:
        self._bind_loop()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<fanta.AsyncPool addresses={self.addresses!r} closed={self.closed}>"

    def _bind_loop(self) -> _fanta.CompletionQueue:
        """Return the completion queue, binding the pool to the running loop on first use."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            if self._pool.closed:
                raise PoolClosedError("pool closed")
            self._loop = loop
            self._queue = _fanta.CompletionQueue()
            # The loop holds the reader callback for as long as it is registered, so the
            # callback holds the pool only weakly: an AsyncPool that is dropped without close()
            # is still collected, and the finalizer then closes it.
            loop.add_reader(self._queue.fileno(), _deliver_to, weakref.ref(self), self._queue)
            weakref.finalize(self, _release, loop, self._queue, self._pool)
        elif loop is not self._loop:
            raise RuntimeError("this AsyncPool belongs to another event loop; open one AsyncPool per loop")

        if self._queue is None:
            raise PoolClosedError("pool closed")
        return self._queue

    def _deliver(self, queue: _fanta.CompletionQueue) -> None:
        """Resolve the futures of every result queued since the last wake-up."""
        for request_id, result in queue.drain():
            future = self._futures.pop(request_id, None)
            if future is None or future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


def _deliver_to(pool_ref: "weakref.ref[AsyncPool]", queue: _fanta.CompletionQueue) -> None:
    """Run the reader callback of the AsyncPool behind ``pool_ref``, or discard the results."""
    pool = pool_ref()
    if pool is None:
        queue.drain()
        return
    pool._deliver(queue)


def _release(loop: asyncio.AbstractEventLoop, queue: _fanta.CompletionQueue, pool: _fanta.Pool) -> None:
    """Close a collected AsyncPool's native pool and remove its reader from the loop."""
    pool.close()
    if not loop.is_closed():
        loop.remove_reader(queue.fileno())
