"""Invalid arguments raise TypeError or ValueError naming the argument."""

from __future__ import annotations

import asyncio

import pytest

import fanta


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"size": "4"}, TypeError, "size"),
        ({"size": 0}, ValueError, "size"),
        ({"size": -1}, ValueError, "size"),
        ({"size": 10**30}, ValueError, "size"),
        ({"size": 2.5}, TypeError, "size"),
        ({"strategy": "fastest"}, ValueError, "strategy"),
        ({"strategy": 3}, TypeError, "strategy"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": -1.0}, ValueError, "timeout"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": "5"}, TypeError, "timeout"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout"),
        ({"max_in_flight": 0}, ValueError, "max_in_flight"),
        ({"max_in_flight": "1024"}, TypeError, "max_in_flight"),
    ],
)
def test_pool_option_errors_name_argument(server, kwargs, error, argument):
    with pytest.raises(error, match=argument):
        fanta.Pool(server.address, **kwargs)


@pytest.mark.parametrize(
    ("addresses", "error", "argument"),
    [
        (42, TypeError, "addresses"),
        (b"127.0.0.1:1", TypeError, "addresses"),
        ([], ValueError, "addresses"),
        (["127.0.0.1:1", 5], TypeError, "addresses"),
        ("no-port", ValueError, "address"),
        ("127.0.0.1:0", ValueError, "address"),
        ("127.0.0.1:99999", ValueError, "address"),
    ],
)
def test_pool_address_errors_name_argument(addresses, error, argument):
    with pytest.raises(error, match=argument):
        fanta.Pool(addresses)


@pytest.mark.parametrize(
    ("payload", "error"),
    [("text", TypeError), (None, TypeError), (42, TypeError), ([1, 2], TypeError)],
)
def test_request_payload_errors_name_argument(server, payload, error):
    with fanta.Pool(server.address) as pool:
        with pytest.raises(error, match="payload"):
            pool.request(payload)

        async def main():
            async with fanta.AsyncPool(server.address) as async_pool:
                await async_pool.request(payload)

        with pytest.raises(error, match="payload"):
            asyncio.run(main())


@pytest.mark.parametrize(("timeout", "error"), [(0, ValueError), (-2, ValueError), ("1", TypeError)])
def test_request_timeout_errors_name_argument(server, timeout, error):
    with fanta.Pool(server.address) as pool:
        with pytest.raises(error, match="timeout"):
            pool.request(b"x", timeout=timeout)


def test_request_rejects_positional_timeout(server):
    with fanta.Pool(server.address) as pool:
        with pytest.raises(TypeError):
            pool.request(b"x", 1.0)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"port": 70000}, ValueError, "port"),
        ({"port": "80"}, TypeError, "port"),
        ({"delay": (0.2, 0.1)}, ValueError, "delay"),
        ({"delay": (-1.0, 0.1)}, ValueError, "delay"),
        ({"fail_prefix": "text"}, TypeError, "fail_prefix"),
        ({"max_in_flight": -1}, ValueError, "max_in_flight"),
    ],
)
def test_server_option_errors_name_argument(kwargs, error, argument):
    with pytest.raises(error, match=argument):
        fanta.Server(**kwargs)


def test_wait_connected_rejects_unreachable_count(server):
    with fanta.Pool(server.address, size=2) as pool:
        with pytest.raises(ValueError, match="count"):
            pool.wait_connected(3)
