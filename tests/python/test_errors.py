"""Each exception class, raised by a real cause on real sockets."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time

import pytest

import fanta


def test_exception_hierarchy():
    for error in (
        fanta.TimeoutError,
        fanta.DisconnectedError,
        fanta.NoConnectionError,
        fanta.ServerError,
        fanta.ProtocolError,
        fanta.PoolClosedError,
        fanta.ForkedError,
    ):
        assert issubclass(error, fanta.FantaError)
    assert issubclass(fanta.TimeoutError, TimeoutError)
    assert issubclass(fanta.DisconnectedError, ConnectionError)
    assert issubclass(fanta.NoConnectionError, ConnectionError)


def test_silent_server_raises_timeout_error():
    with fanta.Server(silent=True) as silent, fanta.Pool(silent.address, size=1) as pool:
        started = time.perf_counter()
        with pytest.raises(fanta.TimeoutError, match="timed out"):
            pool.request(b"never answered", timeout=0.2)
        assert 0.15 < time.perf_counter() - started < 2.0
        with pytest.raises(TimeoutError):
            pool.request(b"never answered", timeout=0.05)
        assert pool.stats()["errors_by_kind"]["timeout"] == 2


def test_silent_server_process_raises_timeout_error(server_process):
    address = server_process("--silent").address
    with fanta.Pool(address, size=1) as pool:
        with pytest.raises(fanta.TimeoutError):
            pool.request(b"never answered", timeout=0.2)


def test_killed_server_raises_disconnected_error(server_process):
    process = server_process("--silent")
    with fanta.Pool(process.address, size=1, timeout=10.0) as pool:
        assert pool.wait_connected(timeout=5.0)
        errors: list[BaseException] = []

        def call():
            try:
                pool.request(b"in flight")
            except BaseException as error:  # noqa: BLE001 - the test inspects it
                errors.append(error)

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 5
        while pool.stats()["in_flight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.kill()
        caller.join(timeout=10)

    assert len(errors) == 1
    assert isinstance(errors[0], fanta.DisconnectedError)
    assert isinstance(errors[0], ConnectionError)


def test_dropped_connection_raises_disconnected_error_in_async():
    with fanta.Server(silent=True) as silent:

        async def main():
            async with fanta.AsyncPool(silent.address, size=1) as pool:
                assert await pool.wait_connected(timeout=5.0)
                request = asyncio.ensure_future(pool.request(b"in flight"))
                await asyncio.sleep(0.1)
                silent.drop_connections()
                with pytest.raises(fanta.DisconnectedError):
                    await request

        asyncio.run(main())


def test_unreachable_address_raises_no_connection_error():
    with fanta.Server() as stopped:
        address = stopped.address
        stopped.shutdown()
    with fanta.Pool(address, size=1, wait_for_connection=False) as pool:
        with pytest.raises(fanta.NoConnectionError):
            pool.request(b"x")
    with fanta.Pool(address, size=1) as pool:
        with pytest.raises(ConnectionError):
            pool.request(b"x", timeout=0.2)


def test_error_frame_raises_server_error_with_message():
    with fanta.Server(fail_prefix=b"FAIL:") as server, fanta.Pool(server.address) as pool:
        with pytest.raises(fanta.ServerError) as raised:
            pool.request(b"FAIL:disk full")
        assert raised.value.message == "disk full"
        assert str(raised.value) == "disk full"
        assert pool.request(b"fine") == b"fine"


def test_error_frame_raises_server_error_from_process(server_process):
    address = server_process("--fail-prefix", "ERR").address

    async def main():
        async with fanta.AsyncPool(address) as pool:
            with pytest.raises(fanta.ServerError) as raised:
                await pool.request(b"ERRbad request")
            assert raised.value.message == "bad request"

    asyncio.run(main())


def frame(kind: int, request_id: int, payload: bytes) -> bytes:
    return struct.pack(">IBI", len(payload) + 5, kind, request_id) + payload


def recv_exact(connection: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = connection.recv(count - len(data))
        if not chunk:
            raise ConnectionError("client closed")
        data += chunk
    return data


def serve_broken_protocol(listener: socket.socket) -> None:
    """Complete the HELLO exchange, then reply to the first request with an unknown frame kind."""
    connection, _ = listener.accept()
    with connection:
        length = struct.unpack(">I", recv_exact(connection, 4))[0]
        recv_exact(connection, length)
        hello = struct.pack(">HII", 1, 16 * 1024 * 1024, 0)
        connection.sendall(frame(0, 0, hello))

        length = struct.unpack(">I", recv_exact(connection, 4))[0]
        _, request_id = struct.unpack(">BI", recv_exact(connection, length)[:5])
        connection.sendall(frame(99, request_id, b"garbage"))
        time.sleep(0.5)


def test_broken_protocol_raises_protocol_error():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()
        serving = threading.Thread(target=serve_broken_protocol, args=(listener,))
        serving.start()
        with fanta.Pool(f"{host}:{port}", size=1, timeout=5.0) as pool:
            with pytest.raises(fanta.ProtocolError, match="unknown frame kind 99"):
                pool.request(b"x")
        serving.join(timeout=10)


def test_closed_pool_raises_pool_closed_error(server):
    pool = fanta.Pool(server.address)
    assert pool.request(b"x") == b"x"
    pool.close()
    pool.close()
    with pytest.raises(fanta.PoolClosedError):
        pool.request(b"x")


def test_closing_pool_fails_requests_in_flight():
    with fanta.Server(silent=True) as silent:
        pool = fanta.Pool(silent.address, size=1)
        assert pool.wait_connected(timeout=5.0)
        errors: list[BaseException] = []

        def call():
            try:
                pool.request(b"in flight", timeout=10.0)
            except BaseException as error:  # noqa: BLE001 - the test inspects it
                errors.append(error)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.1)
        pool.close()
        caller.join(timeout=5)
        assert [type(error) for error in errors] == [fanta.PoolClosedError]


def test_closed_async_pool_fails_pending_requests():
    with fanta.Server(silent=True) as silent:

        async def main():
            pool = fanta.AsyncPool(silent.address, size=1)
            request = asyncio.ensure_future(pool.request(b"pending"))
            await asyncio.sleep(0.1)
            pool.close()
            with pytest.raises(fanta.PoolClosedError):
                await request
            with pytest.raises(fanta.PoolClosedError):
                await pool.request(b"after close")

        asyncio.run(main())
