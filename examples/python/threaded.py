"""Many Python threads sharing one fanta.Pool.

Each thread sends numbered requests and checks that every response is its own
payload; the pool multiplexes all threads over a few connections. Prints one
summary line: requests, errors and throughput.

    python threaded.py                       # against an embedded server
    python threaded.py --address HOST:PORT   # against a running fanta-server
"""

from __future__ import annotations

import argparse
import threading
import time
from contextlib import ExitStack

import fanta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="server HOST:PORT (default: start an embedded server)")
    parser.add_argument("--threads", type=int, default=16, help="caller threads (default 16)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per thread (default 2000)")
    parser.add_argument("--size", type=int, default=4, help="connections in the pool (default 4)")
    options = parser.parse_args()

    with ExitStack() as stack:
        address = options.address or stack.enter_context(fanta.Server()).address
        pool = stack.enter_context(fanta.Pool(address, size=options.size, timeout=5.0))
        pool.wait_connected()

        errors: list[str] = []
        lock = threading.Lock()

        def caller(index: int) -> None:
            for i in range(options.requests):
                payload = b"thread %d request %d" % (index, i)
                try:
                    response = pool.request(payload)
                except fanta.FantaError as error:
                    with lock:
                        errors.append(f"{type(error).__name__}: {error}")
                    continue
                if response != payload:
                    with lock:
                        errors.append(f"wrong response to {payload!r}: {response!r}")

        threads = [threading.Thread(target=caller, args=(index,)) for index in range(options.threads)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started

        total = options.threads * options.requests
        stats = pool.stats()
        print(
            f"threaded: {total} requests from {options.threads} threads over {stats['configured']} connections, "
            f"{len(errors)} errors, {elapsed:.2f} s, {total / elapsed:,.0f} requests/s"
        )
        for error in errors[:5]:
            print(f"  {error}")
        if errors:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
