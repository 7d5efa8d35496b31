"""Many callers sharing one pool: threads and asyncio tasks, with every payload checked."""

from __future__ import annotations

import asyncio
import threading
import time

import fanta

THREADS = 32
REQUESTS_PER_THREAD = 2_000
ASYNC_REQUESTS = 10_000


def test_threads_share_pool_with_correct_payloads(server):
    failures: list[str] = []
    with fanta.Pool(server.address, size=4) as pool:
        assert pool.wait_connected(timeout=5.0)

        def worker(thread_index: int) -> None:
            for i in range(REQUESTS_PER_THREAD):
                payload = b"t%d-r%d" % (thread_index, i)
                response = pool.request(payload)
                if response != payload:
                    failures.append(f"thread {thread_index} request {i}: sent {payload!r}, got {response!r}")
                    return

        threads = [threading.Thread(target=worker, args=(index,)) for index in range(THREADS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started

        stats = pool.stats()

    assert failures == []
    total = THREADS * REQUESTS_PER_THREAD
    assert stats["completed"] == total
    assert stats["errors"] == 0
    print(f"{total} threaded requests in {elapsed:.2f} s ({total / elapsed:,.0f} requests/s)")


def test_async_pool_10k_concurrent_requests(server):
    async def main():
        async with fanta.AsyncPool(server.address, size=4) as pool:
            assert await pool.wait_connected(timeout=5.0)
            payloads = [b"a%d" % i for i in range(ASYNC_REQUESTS)]
            started = time.perf_counter()
            responses = await asyncio.gather(*(pool.request(payload) for payload in payloads))
            elapsed = time.perf_counter() - started
            assert responses == payloads
            return pool.stats(), elapsed

    stats, elapsed = asyncio.run(main())
    assert stats["completed"] == ASYNC_REQUESTS
    assert stats["errors"] == 0
    # Completions are batched: one loop wake-up delivers many of them.
    assert 0 < stats["loop_wakeups"] < ASYNC_REQUESTS / 10
    print(
        f"{ASYNC_REQUESTS} async requests in {elapsed:.2f} s ({ASYNC_REQUESTS / elapsed:,.0f} requests/s), "
        f"{stats['loop_wakeups']} loop wake-ups"
    )


def test_async_cancel_leaves_pool_usable(server_process):
    address = server_process("--delay-ms", "300-300").address

    async def main():
        async with fanta.AsyncPool(address, size=1, timeout=5.0) as pool:
            tasks = [asyncio.ensure_future(pool.request(b"slow%d" % i)) for i in range(50)]
            await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(result, asyncio.CancelledError) for result in results)
            assert await pool.request(b"after") == b"after"
            # The cancelled requests' responses arrive and are dropped, not delivered.
            await asyncio.sleep(0.4)
            return pool.stats()

    stats = asyncio.run(main())
    assert stats["in_flight"] == 0
    assert stats["completed"] == 1


def test_async_wait_for_timeout_cancels_request():
    with fanta.Server(silent=True) as silent:

        async def main():
            async with fanta.AsyncPool(silent.address, size=1) as pool:
                started = time.perf_counter()
                try:
                    await asyncio.wait_for(pool.request(b"never"), 0.2)
                except asyncio.TimeoutError:
                    pass
                else:
                    raise AssertionError("wait_for did not time out")
                return time.perf_counter() - started

        assert asyncio.run(main()) < 2.0
