"""Type stubs of the native module fanta._fanta; tests/python checks them against the build."""

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

__version__: str

_BytesLike = Union[bytes, bytearray, memoryview]

class Pool:
    """A pool of multiplexed connections to one or more servers."""

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
    ) -> None: ...
    def request(self, payload: _BytesLike, *, timeout: Optional[float] = None) -> bytes:
        """Send payload and return the response payload, blocking this thread only."""
    def _submit_to(
        self,
        queue: CompletionQueue,
        request_id: int,
        payload: _BytesLike,
        *,
        timeout: Optional[float] = None,
    ) -> RequestHandle:
        """Start a request whose result is pushed to queue under request_id."""
    def wait_connected(self, count: Optional[int] = None, *, timeout: float = 5.0) -> bool:
        """Wait until count connections (default: all) are connected; return whether they are."""
    def stats(self) -> Dict[str, Any]:
        """Return a snapshot of the pool's counters and connections."""
    def close(self) -> None:
        """Close the pool; requests in flight fail with PoolClosedError."""
    @property
    def closed(self) -> bool:
        """Whether close() was called."""
    @property
    def addresses(self) -> List[str]:
        """The configured "host:port" addresses."""
    @property
    def timeout(self) -> float:
        """The default per-request deadline, in seconds."""
    def __enter__(self) -> Pool: ...
    def __exit__(self, *exc_info: object) -> bool: ...

class RequestHandle:
    """A request started with Pool._submit_to."""

    def cancel(self) -> None:
        """Cancel the request; a response that arrives later is dropped."""

class CompletionQueue:
    """A queue of finished requests that an event loop drains when fileno() is readable."""

    def __init__(self) -> None: ...
    def fileno(self) -> int:
        """The file descriptor that becomes readable when completions are queued."""
    def drain(self) -> List[Tuple[int, Union[bytes, BaseException]]]:
        """Take every queued completion as (request_id, bytes or exception) tuples."""
    @property
    def wakeups(self) -> int:
        """Drains that delivered at least one completion."""
    @property
    def delivered(self) -> int:
        """Completions delivered by drain()."""

class Server:
    """The reference server, listening on a free loopback port by default."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        delay: Optional[Tuple[float, float]] = None,
        silent: bool = False,
        fail_prefix: Optional[_BytesLike] = None,
        max_in_flight: int = 0,
    ) -> None: ...
    @property
    def address(self) -> str:
        """The bound address as "host:port"."""
    @property
    def port(self) -> int:
        """The bound port."""
    @property
    def requests_received(self) -> int:
        """Requests received so far over all connections."""
    def drop_connections(self) -> None:
        """Close every client connection at once; the server keeps accepting."""
    def shutdown(self) -> None:
        """Stop accepting and close every connection. Idempotent."""
    def __enter__(self) -> Server: ...
    def __exit__(self, *exc_info: object) -> bool: ...

def _stop_log_forwarding() -> None:
    """Stop forwarding log events and flush the queued ones; registered with atexit."""

def _reset_after_fork() -> None:
    """Replace the log forwarder in a forked child."""
