"""fanta: a routing connection pool for Python threads and asyncio tasks.

Many threads or tasks share a few multiplexed connections: each request is tagged
with an id, so requests from every caller are in flight on the same connection at
once. The pool runs in Rust outside the GIL.

    import fanta

    with fanta.Server() as server, fanta.Pool(server.address, size=4) as pool:
        assert pool.request(b"PING") == b"PONG"

Errors derive from :class:`FantaError`; see each class. Log events of the pool
reach the standard ``logging`` module under the logger name ``fanta``.
"""

from __future__ import annotations

import atexit
import os

from ._errors import (
    DisconnectedError,
    FantaError,
    ForkedError,
    NoConnectionError,
    PoolClosedError,
    ProtocolError,
    ServerError,
    TimeoutError,
)
from . import _fanta
from ._fanta import Pool, Server, __version__
from ._async_pool import AsyncPool

__all__ = [
    "__version__",
    "Pool",
    "AsyncPool",
    "Server",
    "FantaError",
    "TimeoutError",
    "DisconnectedError",
    "NoConnectionError",
    "ServerError",
    "ProtocolError",
    "PoolClosedError",
    "ForkedError",
]

# Stop forwarding log events before the interpreter finalizes, so that no library thread
# attaches to a finalizing interpreter.
atexit.register(_fanta._stop_log_forwarding)

# A forked child has no log forwarder thread; it starts a fresh one.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fanta._reset_after_fork)
