"""Log events of the core reach Python's logging under the logger "fanta"."""

from __future__ import annotations

import logging
import time

import fanta


def wait_for_record(caplog, text: str, timeout: float = 5.0) -> logging.LogRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in caplog.records:
            if text in record.getMessage():
                return record
        time.sleep(0.02)
    raise AssertionError(f"no log record containing {text!r}; got {[r.getMessage() for r in caplog.records]}")


def test_connect_and_disconnect_reach_fanta_logger(caplog):
    caplog.set_level(logging.DEBUG, logger="fanta")
    with fanta.Server() as server:
        with fanta.Pool(server.address, size=1) as pool:
            assert pool.request(b"x") == b"x"
            connected = wait_for_record(caplog, "connected")
            assert connected.name == "fanta"
            assert connected.levelno == logging.INFO
            assert f"addr={server.address}" in connected.getMessage()
            assert connected.fanta_target.startswith("fanta_core")

            server.drop_connections()
            disconnected = wait_for_record(caplog, "disconnected")
            assert disconnected.levelno == logging.WARNING


def test_records_below_logger_level_are_not_forwarded(caplog):
    caplog.set_level(logging.ERROR, logger="fanta")
    with fanta.Server() as server, fanta.Pool(server.address, size=1) as pool:
        assert pool.request(b"x") == b"x"
        server.drop_connections()
        assert pool.wait_connected(timeout=5.0)
        time.sleep(0.2)
    assert [record for record in caplog.records if record.name == "fanta"] == []
