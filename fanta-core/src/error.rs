//! The errors a request or a pool operation can end with.

use std::fmt;

use crate::protocol::ProtocolError;

/// Why a request, or opening a pool, failed.
///
/// Each variant tells the caller what to do next: retry ([`Error::Timeout`],
/// [`Error::NoConnection`]), decide whether the request is safe to repeat
/// ([`Error::Disconnected`]), or fix the input ([`Error::InvalidArgument`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The deadline passed before a response arrived. The server may still process the request;
    /// its late response is dropped and counted.
    Timeout,
    /// The connection closed while the request was in flight. The server may or may not have
    /// processed it.
    Disconnected(String),
    /// No connection was routable: none is connected, or every connected one is full, and the
    /// pool is set to fail at once (or the deadline passed while waiting).
    NoConnection,
    /// The server answered with an ERROR frame; the string is its message.
    Server(String),
    /// The connection broke the protocol and was closed; the request was not answered.
    Protocol(ProtocolError),
    /// The pool was closed or dropped before the request completed.
    PoolClosed,
    /// An argument or a setting is invalid; the message names it.
    InvalidArgument(String),
    /// A blocking call was made from a thread that is driving a tokio runtime, where blocking
    /// would stall other tasks. Use the async API there.
    BlockingInRuntime,
    /// The caller cancelled the request before it completed.
    Cancelled,
    /// The pool was opened before this process forked, and its runtime threads exist only in
    /// the parent. Open a new pool in the child.
    Forked,
}

/// The kind of an [`Error`], without its data; used as a stats index and for C status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Timeout = 0,
    Disconnected = 1,
    NoConnection = 2,
    Server = 3,
    Protocol = 4,
    PoolClosed = 5,
    InvalidArgument = 6,
    BlockingInRuntime = 7,
    Forked = 8,
    Cancelled = 9,
}

impl ErrorKind {
    /// Number of kinds; the length of per-kind counter arrays.
    pub const COUNT: usize = 10;

    pub const ALL: [ErrorKind; ErrorKind::COUNT] = [
        ErrorKind::Timeout,
        ErrorKind::Disconnected,
        ErrorKind::NoConnection,
        ErrorKind::Server,
        ErrorKind::Protocol,
        ErrorKind::PoolClosed,
        ErrorKind::InvalidArgument,
        ErrorKind::BlockingInRuntime,
        ErrorKind::Forked,
        ErrorKind::Cancelled,
    ];

    /// A stable snake_case name, used as a key in stats and logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::NoConnection => "no_connection",
            ErrorKind::Server => "server",
            ErrorKind::Protocol => "protocol",
            ErrorKind::PoolClosed => "pool_closed",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::BlockingInRuntime => "blocking_in_runtime",
            ErrorKind::Forked => "forked",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Timeout => ErrorKind::Timeout,
            Error::Disconnected(_) => ErrorKind::Disconnected,
            Error::NoConnection => ErrorKind::NoConnection,
            Error::Server(_) => ErrorKind::Server,
            Error::Protocol(_) => ErrorKind::Protocol,
            Error::PoolClosed => ErrorKind::PoolClosed,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::BlockingInRuntime => ErrorKind::BlockingInRuntime,
            Error::Forked => ErrorKind::Forked,
            Error::Cancelled => ErrorKind::Cancelled,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidArgument(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("request timed out"),
            Error::Disconnected(cause) => write!(
                f,
                "connection lost with the request in flight ({cause}); \
                 the server may or may not have processed it"
            ),
            Error::NoConnection => f.write_str("no connection available"),
            Error::Server(message) => write!(f, "server error: {message}"),
            Error::Protocol(cause) => write!(f, "protocol error: {cause}"),
            Error::PoolClosed => f.write_str("pool closed"),
            Error::InvalidArgument(message) => write!(f, "invalid argument: {message}"),
            Error::BlockingInRuntime => f.write_str(
                "blocking request called from a thread that runs a tokio runtime \
                 (or from a completion callback); use the async API there",
            ),
            Error::Cancelled => f.write_str("request cancelled"),
            Error::Forked => f.write_str(
                "pool was opened before fork() and cannot run in the child process; \
                 open a new pool in the child",
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<ProtocolError> for Error {
    fn from(error: ProtocolError) -> Error {
        Error::Protocol(error)
    }
}
