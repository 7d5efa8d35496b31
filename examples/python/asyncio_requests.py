"""Many asyncio tasks sharing one fanta.AsyncPool.

Starts all requests at once and awaits them together; no thread is blocked per
request. Prints one summary line: requests, errors, throughput and how many
event loop wake-ups delivered the results.

    python asyncio_requests.py                       # against an embedded server
    python asyncio_requests.py --address HOST:PORT   # against a running fanta-server
"""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import ExitStack

import fanta


async def run(address: str, requests: int, size: int) -> None:
    async with fanta.AsyncPool(address, size=size, timeout=10.0) as pool:
        await pool.wait_connected()
        payloads = [b"task %d" % i for i in range(requests)]

        started = time.perf_counter()
        results = await asyncio.gather(*(pool.request(payload) for payload in payloads), return_exceptions=True)
        elapsed = time.perf_counter() - started

        errors = [
            result if isinstance(result, BaseException) else f"wrong response to {payload!r}: {result!r}"
            for payload, result in zip(payloads, results)
            if result != payload
        ]
        stats = pool.stats()
        print(
            f"asyncio: {requests} concurrent requests over {stats['configured']} connections, "
            f"{len(errors)} errors, {elapsed:.2f} s, {requests / elapsed:,.0f} requests/s, "
            f"{stats['loop_wakeups']} loop wake-ups"
        )
        for error in errors[:5]:
            print(f"  {error!r}")
        if errors:
            raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="server HOST:PORT (default: start an embedded server)")
    parser.add_argument("--requests", type=int, default=20000, help="concurrent requests (default 20000)")
    parser.add_argument("--size", type=int, default=4, help="connections in the pool (default 4)")
    options = parser.parse_args()

    with ExitStack() as stack:
        address = options.address or stack.enter_context(fanta.Server()).address
        asyncio.run(run(address, options.requests, options.size))


if __name__ == "__main__":
    main()
