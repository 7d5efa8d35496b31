"""The exception classes of fanta, one per way a request can fail.

They are defined in Python because some also derive from a builtin exception
(``TimeoutError``, ``ConnectionError``), which needs multiple inheritance. The
native module raises them.
"""

from __future__ import annotations

import builtins

__all__ = [
    "FantaError",
    "TimeoutError",
    "DisconnectedError",
    "NoConnectionError",
    "ServerError",
    "ProtocolError",
    "PoolClosedError",
    "ForkedError",
]


class FantaError(Exception):
    """Base class of every error that fanta raises for a failed request or pool operation.

    Invalid arguments raise ``TypeError`` or ``ValueError`` instead. The core's
    internal kinds "cancelled" and "blocking in runtime" also raise this class
    itself; neither reaches a caller in normal use.
    """


class TimeoutError(FantaError, builtins.TimeoutError):
    """The request's deadline passed before its response arrived.

    The server may still process the request. Its late response is dropped.
    """


class DisconnectedError(FantaError, builtins.ConnectionError):
    """The connection closed while the request was in flight.

    The server may or may not have processed the request.
    """


class NoConnectionError(FantaError, builtins.ConnectionError):
    """No connection could take the request before its deadline.

    None was connected (or every connected one was full), and either the pool
    does not wait for a connection or the deadline passed while waiting.
    """


class ServerError(FantaError):
    """The server sent an error for the request. ``message`` contains its text."""

    @property
    def message(self) -> str:
        """The error message sent by the server."""
        return str(self.args[0]) if self.args else ""


class ProtocolError(FantaError):
    """The server broke the protocol, so its connection was closed without a response."""


class PoolClosedError(FantaError):
    """The pool was closed before or while the request ran."""


class ForkedError(FantaError):
    """The pool was opened before this process forked and cannot run in the child.

    Open a new pool in the child process.
    """
