"""Ctrl-C, interpreter exit and fork, each in a child process."""

from __future__ import annotations

import multiprocessing
import signal
import time
import warnings

import fanta

from conftest import python_child


def test_sigint_interrupts_blocking_request_quickly():
    child = python_child(
        """
        import sys, time
        import fanta

        with fanta.Server(delay=(1.5, 1.5)) as server, fanta.Pool(server.address, size=1) as pool:
            pool.wait_connected()
            print("ready", flush=True)
            try:
                pool.request(b"slow", timeout=30.0)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            else:
                sys.exit("request was not interrupted")
            # The abandoned request left the pool healthy: the next one gets its response.
            assert pool.request(b"PING", timeout=10.0) == b"PONG"
            print("healthy", flush=True)
        """
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)
        sent = time.perf_counter()
        assert child.stdout.readline().strip() == "interrupted"
        latency = time.perf_counter() - sent
        assert child.stdout.readline().strip() == "healthy"
        assert child.wait(timeout=20) == 0, child.stderr.read()
    finally:
        child.kill()
        child.communicate()
    print(f"SIGINT to KeyboardInterrupt: {latency * 1000:.0f} ms")
    assert latency < 0.1


def test_sigint_interrupts_wait_for_connection():
    child = python_child(
        """
        import sys
        import fanta

        with fanta.Server() as stopped:
            port = stopped.port
        with fanta.Pool(f"127.0.0.1:{port}", size=1, connect_timeout=0.2) as pool:
            print("ready", flush=True)
            try:
                pool.request(b"PING", timeout=30.0)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            else:
                sys.exit("request was not interrupted")
            # Once a server listens on the address, the same pool connects and serves requests.
            with fanta.Server(port=port):
                assert pool.request(b"PING", timeout=20.0) == b"PONG"
            print("healthy", flush=True)
        """
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)
        sent = time.perf_counter()
        assert child.stdout.readline().strip() == "interrupted"
        latency = time.perf_counter() - sent
        assert child.stdout.readline().strip() == "healthy"
        assert child.wait(timeout=30) == 0, child.stderr.read()
    finally:
        child.kill()
        child.communicate()
    assert latency < 0.1


def test_exit_with_open_pools_keeps_exit_code():
    child = python_child(
        """
        import asyncio, logging, sys, threading
        import fanta

        logging.basicConfig(level=logging.DEBUG)
        server = fanta.Server()
        silent = fanta.Server(silent=True)
        pool = fanta.Pool(server.address, size=2)
        assert pool.request(b"PING") == b"PONG"

        # A daemon thread still blocked in a request when the interpreter exits.
        waiting = fanta.Pool(silent.address, size=1)
        threading.Thread(target=waiting.request, args=(b"never",), daemon=True).start()

        async def leave_async_pool_open():
            async_pool = fanta.AsyncPool(server.address)
            assert await async_pool.request(b"x") == b"x"
            return async_pool

        async_pool = asyncio.run(leave_async_pool_open())
        sys.exit(7)
        """
    )
    try:
        _, stderr = child.communicate(timeout=20)
    finally:
        child.kill()
    assert child.returncode == 7, stderr
    assert "Fatal Python error" not in stderr
    assert "panicked" not in stderr


def test_exception_exit_with_open_pool_exits_nonzero():
    child = python_child(
        """
        import fanta
        server = fanta.Server()
        pool = fanta.Pool(server.address)
        pool.request(b"x")
        raise SystemExit(3)
        """
    )
    _, stderr = child.communicate(timeout=20)
    assert child.returncode == 3, stderr


def use_pools_in_child(address: str, results) -> None:
    """Runs in the forked child: the inherited pool fails at once, a new pool works."""
    try:
        INHERITED_POOL.request(b"from child", timeout=5.0)
        results.put("inherited pool answered")
    except fanta.ForkedError as error:
        results.put(f"forked: {error}")
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        results.put(f"unexpected {type(error).__name__}: {error}")

    try:
        with fanta.Pool(address, size=1) as pool:
            results.put(pool.request(b"new pool in child"))
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        results.put(f"unexpected {type(error).__name__}: {error}")


INHERITED_POOL: fanta.Pool


def test_forked_child_gets_error_then_working_pool(server_process):
    global INHERITED_POOL
    address = server_process().address
    with fanta.Pool(address, size=2) as pool:
        INHERITED_POOL = pool
        assert pool.request(b"parent") == b"parent"

        context = multiprocessing.get_context("fork")
        results = context.Queue()
        with warnings.catch_warnings():
            # Python 3.12+ warns that fork() in a process with threads may deadlock; this
            # test checks that fanta's child does not.
            warnings.simplefilter("ignore", DeprecationWarning)
            child = context.Process(target=use_pools_in_child, args=(address, results))
            child.start()
        child.join(timeout=30)
        assert child.exitcode == 0

        inherited = results.get(timeout=5)
        new_pool = results.get(timeout=5)
        assert inherited.startswith("forked: "), inherited
        assert new_pool == b"new pool in child"

        # The parent's pool is unaffected by the child.
        assert pool.request(b"parent again") == b"parent again"
        results.close()
