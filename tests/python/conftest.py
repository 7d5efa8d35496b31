"""Shared fixtures: embedded servers, fanta-server processes and child interpreters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator, List

import pytest

import fanta

ROOT = Path(__file__).resolve().parents[2]
SERVER_BIN = Path(os.environ.get("FANTA_SERVER_BIN", ROOT / "target" / "release" / "fanta-server"))


class ServerProcess:
    """A fanta-server process listening on a free loopback port."""

    def __init__(self, *args: str) -> None:
        if not SERVER_BIN.exists():
            raise RuntimeError(f"{SERVER_BIN} not found; build it with cargo build --release -p fanta-core --bin fanta-server")
        self.process = subprocess.Popen(
            [str(SERVER_BIN), "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.process.stdout.readline().strip()  # type: ignore[union-attr]
        if not line.startswith("listening on "):
            self.process.kill()
            raise RuntimeError(f"fanta-server did not start: {line!r}")
        self.address = line.removeprefix("listening on ")

    def kill(self) -> None:
        """Kill the process at once, as a crash would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def server() -> Iterator[fanta.Server]:
    with fanta.Server() as embedded:
        yield embedded


@pytest.fixture
def server_process() -> Iterator:
    """A factory for fanta-server processes; each is stopped after the test."""
    started: List[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        process = ServerProcess(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def python_child(source: str, **kwargs) -> subprocess.Popen:
    """Start a child interpreter running `source`, with stdout and stderr piped as text."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
