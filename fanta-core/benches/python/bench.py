"""Closed-loop throughput of the fanta Python module beside pure-Python clients.

Variants, each sending 16-byte requests to the same fanta-server and waiting for the echo:

- fanta_pool_threads: ``fanta.Pool(address, size=4)``, one Python thread per caller.
- socket_per_thread: a pure-Python blocking client. Each thread checks a socket out of a shared
  list for one request and opens a new one when the list is empty, so the client ends up with
  one socket per concurrent thread, as a checkout pool without a size limit does.
- fanta_async_pool: ``fanta.AsyncPool(address, size=4)``, one asyncio task per caller.
- asyncio_multiplexed: a pure-Python asyncio client that multiplexes requests over 4
  connections by request id, one asyncio task per caller.

Both pure-Python clients implement the frame layout of docs/PROTOCOL.md themselves.

usage: bench.py --server HOST:PORT [--profile smoke|quick|full]

Prints one JSON object on stdout and progress on stderr; started by benches/run.sh.
"""

import argparse
import asyncio
import itertools
import json
import socket
import statistics
import struct
import sys
import threading
import time

import fanta

PAYLOAD = b"fanta-bench-0016"
CONNECTIONS = 4
KIND_HELLO, KIND_REQUEST, KIND_RESPONSE = 0, 1, 2
HEADER = struct.Struct(">IBI")  # length, kind, id, where length counts kind, id and payload


def encode_frame(kind, request_id, payload):
    return HEADER.pack(5 + len(payload), kind, request_id) + payload


def hello_frame():
    return encode_frame(KIND_HELLO, 0, struct.pack(">H", 1))


# Pure-Python blocking client.


def recv_exactly(sock, size):
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("server closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(sock):
    length, kind, request_id = HEADER.unpack(recv_exactly(sock, HEADER.size))
    return kind, request_id, recv_exactly(sock, length - 5)


def connect_blocking(host, port):
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(hello_frame())
    kind, _, _ = read_frame(sock)
    if kind != KIND_HELLO:
        raise ConnectionError(f"server's first frame has kind {kind}, expected HELLO")
    return sock


class SocketPerThreadClient:
    """Lends each request a socket of its own, and opens one more when none is free."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.free = []
        self.lock = threading.Lock()

    def request(self, payload):
        with self.lock:
            sock = self.free.pop() if self.free else None
        if sock is None:
            sock = connect_blocking(self.host, self.port)
        sock.sendall(encode_frame(KIND_REQUEST, 1, payload))
        kind, _, response = read_frame(sock)
        if kind != KIND_RESPONSE:
            raise ConnectionError(f"server sent kind {kind}, expected RESPONSE")
        with self.lock:
            self.free.append(sock)
        return response

    def close(self):
        for sock in self.free:
            sock.close()


# Pure-Python asyncio multiplexing client.


class MultiplexedProtocol(asyncio.Protocol):
    """One connection: matches each RESPONSE to the future waiting on its id."""

    def __init__(self, connected):
        self.connected = connected
        self.buffer = bytearray()
        self.waiting = {}
        self.ids = itertools.count(1)
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(hello_frame())

    def data_received(self, data):
        self.buffer += data
        offset = 0
        while len(self.buffer) - offset >= HEADER.size:
            length, kind, request_id = HEADER.unpack_from(self.buffer, offset)
            end = offset + 4 + length
            if len(self.buffer) < end:
                break
            payload = bytes(self.buffer[offset + HEADER.size : end])
            offset = end
            if kind == KIND_HELLO:
                self.connected.set_result(None)
            elif kind == KIND_RESPONSE:
                self.waiting.pop(request_id).set_result(payload)
            else:
                raise ConnectionError(f"server sent kind {kind}")
        del self.buffer[:offset]

    def connection_lost(self, exc):
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("connection lost"))

    def request(self, payload):
        request_id = next(self.ids) & 0xFFFFFFFF or next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = future
        self.transport.write(encode_frame(KIND_REQUEST, request_id, payload))
        return future


class MultiplexedClient:
    """Sends each request on the next of its connections in turn."""

    def __init__(self, protocols):
        self.protocols = protocols
        self.turn = itertools.cycle(protocols)

    @classmethod
    async def connect(cls, host, port, count):
        loop = asyncio.get_running_loop()
        protocols = []
        for _ in range(count):
            connected = loop.create_future()
            _, protocol = await loop.create_connection(lambda: MultiplexedProtocol(connected), host, port)
            await connected
            protocols.append(protocol)
        return cls(protocols)

    async def request(self, payload):
        return await next(self.turn).request(payload)

    def close(self):
        for protocol in self.protocols:
            protocol.transport.close()


# Measurement.


def measure_threads(request, callers, warmup, duration):
    """Runs `callers` threads that call `request` in a loop; returns requests per second."""
    stop = threading.Event()
    counts = [0] * callers

    def caller(index):
        while not stop.is_set():
            if len(request(PAYLOAD)) != len(PAYLOAD):
                raise AssertionError("echo has the wrong length")
            counts[index] += 1

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(callers)]
    for thread in threads:
        thread.start()
    time.sleep(warmup)
    start_count, start = sum(counts), time.perf_counter()
    time.sleep(duration)
    end_count, elapsed = sum(counts), time.perf_counter() - start
    stop.set()
    for thread in threads:
        thread.join()
    return (end_count - start_count) / elapsed


async def measure_tasks(request, callers, warmup, duration):
    """Runs `callers` asyncio tasks that await `request` in a loop; returns requests per second."""
    stop = False
    counts = [0] * callers

    async def caller(index):
        while not stop:
            if len(await request(PAYLOAD)) != len(PAYLOAD):
                raise AssertionError("echo has the wrong length")
            counts[index] += 1

    tasks = [asyncio.create_task(caller(i)) for i in range(callers)]
    await asyncio.sleep(warmup)
    start_count, start = sum(counts), time.perf_counter()
    await asyncio.sleep(duration)
    end_count, elapsed = sum(counts), time.perf_counter() - start
    stop = True
    await asyncio.gather(*tasks)
    return (end_count - start_count) / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True, help="HOST:PORT of the echo server")
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    args = parser.parse_args()

    host, port = args.server.rsplit(":", 1)
    port = int(port)
    caller_counts, rounds, warmup, duration = {
        "smoke": ([1, 16], 1, 0.1, 0.2),
        "quick": ([1, 16, 64, 256], 2, 0.2, 1.0),
        "full": ([1, 16, 64, 256], 5, 0.5, 3.0),
    }[args.profile]

    loop = asyncio.new_event_loop()
    pool = fanta.Pool(args.server, size=CONNECTIONS)
    if not pool.wait_connected(CONNECTIONS, timeout=10):
        sys.exit(f"bench.py: fanta.Pool did not connect to {args.server}")
    socket_client = SocketPerThreadClient(host, port)
    async_pool = fanta.AsyncPool(args.server, size=CONNECTIONS)
    if not loop.run_until_complete(async_pool.wait_connected(CONNECTIONS, timeout=10)):
        sys.exit(f"bench.py: fanta.AsyncPool did not connect to {args.server}")
    multiplexed = loop.run_until_complete(MultiplexedClient.connect(host, port, CONNECTIONS))

    variants = [
        ("fanta_pool_threads", "fanta.Pool, one thread per caller", "threads", pool.request),
        ("socket_per_thread", "pure-Python blocking, one socket per thread", "threads", socket_client.request),
        ("fanta_async_pool", "fanta.AsyncPool, one asyncio task per caller", "tasks", async_pool.request),
        ("asyncio_multiplexed", "pure-Python asyncio, 4 multiplexed connections", "tasks", multiplexed.request),
    ]
    samples = {name: {count: [] for count in caller_counts} for name, *_ in variants}
    for round_index in range(rounds):
        for count_index, callers in enumerate(caller_counts):
            for offset in range(len(variants)):
                name, _, kind, request = variants[(offset + round_index + count_index) % len(variants)]
                if kind == "threads":
                    rate = measure_threads(request, callers, warmup, duration)
                else:
                    rate = loop.run_until_complete(measure_tasks(request, callers, warmup, duration))
                print(f"python: round {round_index} {name:>20} callers {callers:>3}: {rate:10.0f} req/s", file=sys.stderr)
                samples[name][callers].append(rate)

    pool.close()
    async_pool.close()
    socket_client.close()
    multiplexed.close()
    loop.close()

    result = {
        "section": "python",
        "profile": args.profile,
        "connections": CONNECTIONS,
        "payload_bytes": len(PAYLOAD),
        "rounds": rounds,
        "seconds_per_sample": duration,
        "python": sys.version.split()[0],
        "about": (
            f"`fanta-core/benches/python/bench.py` on CPython {sys.version.split()[0]}, with the timing of "
            f"section 2 (median of {rounds} samples of {duration:g} s). `fanta.Pool`, `fanta.AsyncPool` and "
            "`asyncio_multiplexed` use 4 connections; `socket_per_thread` opens one socket per concurrent "
            "thread, as a growing checkout pool does."
        ),
        "reference_pairs": {
            "fanta_pool_threads": "socket_per_thread",
            "fanta_async_pool": "asyncio_multiplexed",
        },
        "target_callers": {"fanta_pool_threads": 16, "fanta_async_pool": 64 if 64 in caller_counts else 16},
        "variants": [
            {
                "name": name,
                "description": description,
                "points": [
                    {
                        "callers": count,
                        "requests_per_second": statistics.median(samples[name][count]),
                        "samples": samples[name][count],
                    }
                    for count in caller_counts
                ],
            }
            for name, description, *_ in variants
        ],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
