"""The documented API end to end, against the embedded server and a fanta-server process."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
import weakref

import pytest

import fanta


def exercise_pool(address: str) -> None:
    with fanta.Pool(address, size=4, strategy="round_robin", timeout=5.0) as pool:
        assert pool.request(b"PING") == b"PONG"
        assert pool.request(b"x", timeout=0.5) == b"x"
        assert pool.request(bytearray(b"bytearray")) == b"bytearray"
        assert pool.request(memoryview(b"..view..")[2:6]) == b"view"
        assert pool.request(b"") == b""
        assert pool.wait_connected(timeout=5.0)

        stats = pool.stats()
        assert stats["connected"] == 4
        assert stats["in_flight"] == 0
        assert stats["requests"] == 5
        assert stats["errors"] == 0
        assert stats["reconnects"] == 0
        assert len(stats["connections"]) == 4
        for connection in stats["connections"]:
            assert connection["address"] == address
            assert connection["state"] == "connected"
            assert connection["in_flight"] == 0
        assert not pool.closed

    assert pool.closed


async def exercise_async_pool(address: str) -> None:
    async with fanta.AsyncPool(address, size=4) as pool:
        assert await pool.request(b"PING") == b"PONG"
        assert await pool.request(bytearray(b"abc"), timeout=2.0) == b"abc"
        responses = await asyncio.gather(*(pool.request(b"%d" % i) for i in range(100)))
        assert responses == [b"%d" % i for i in range(100)]
        assert pool.stats()["requests"] == 102
    assert pool.closed


def test_pool_against_embedded_server(server):
    assert server.address.startswith("127.0.0.1:")
    assert server.address == f"127.0.0.1:{server.port}"
    exercise_pool(server.address)
    assert server.requests_received == 5


def test_pool_against_server_process(server_process):
    exercise_pool(server_process().address)


def test_async_pool_against_embedded_server(server):
    asyncio.run(exercise_async_pool(server.address))


def test_async_pool_against_server_process(server_process):
    asyncio.run(exercise_async_pool(server_process().address))


def test_pool_accepts_address_list(server):
    with fanta.Server() as second:
        with fanta.Pool([server.address, second.address], size=2, strategy="random") as pool:
            assert pool.addresses == [server.address, second.address]
            assert pool.wait_connected(timeout=5.0)
            for i in range(200):
                assert pool.request(b"%d" % i) == b"%d" % i
            assert pool.stats()["configured"] == 4
        assert server.requests_received > 0
        assert second.requests_received > 0


def test_large_payload_round_trips(server):
    payload = bytes(range(256)) * 4096
    with fanta.Pool(server.address) as pool:
        assert pool.request(payload) == payload


def test_server_delay_reorders_responses(server_process):
    address = server_process("--delay-ms", "0-20").address

    async def main():
        async with fanta.AsyncPool(address, size=1) as pool:
            payloads = [b"%d" % i for i in range(200)]
            assert await asyncio.gather(*map(pool.request, payloads)) == payloads

    asyncio.run(main())


def test_repr_and_version(server):
    assert isinstance(fanta.__version__, str) and fanta.__version__.count(".") == 2
    with fanta.Pool(server.address) as pool:
        assert "fanta.Pool" in repr(pool)
    assert server.address in repr(server)


def test_async_pool_rejects_second_loop(server):
    pool = fanta.AsyncPool(server.address)
    asyncio.run(pool.request(b"one"))
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(pool.request(b"two"))
    pool.close()


def test_blocked_request_releases_gil():
    with fanta.Server(silent=True) as silent, fanta.Pool(silent.address, size=1) as pool:
        caller = threading.Thread(target=lambda: pytest.raises(fanta.TimeoutError, pool.request, b"x", timeout=0.5))
        caller.start()
        # This thread keeps running Python code while the other one is blocked in the request.
        iterations = 0
        deadline = time.perf_counter() + 0.3
        while time.perf_counter() < deadline:
            iterations += 1
        caller.join(timeout=5)
        assert not caller.is_alive()
        assert iterations > 100_000


def test_async_pool_dropped_without_close_is_collected(server):
    async def main():
        pool = fanta.AsyncPool(server.address, size=2)
        assert await pool.request(b"once") == b"once"
        native = pool._pool
        reference = weakref.ref(pool)

        del pool
        gc.collect()
        assert reference() is None
        assert native.closed

    asyncio.run(main())


def test_stats_show_last_connect_error():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        address = "127.0.0.1:%d" % placeholder.getsockname()[1]

    with fanta.Pool(address, size=1, timeout=0.2) as pool:
        with pytest.raises(fanta.NoConnectionError):
            pool.request(b"nobody listens")
        connection = pool.stats()["connections"][0]
        assert connection["state"] in ("connecting", "backoff")
        assert "connect failed" in connection["last_error"]
