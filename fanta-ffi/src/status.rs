//! Status codes: the stable numeric result of every C function, and their names.

use std::ffi::{c_char, c_int};

use fanta_core::ErrorKind;

/// The result of a libfanta call.
///
/// The numeric values are stable: a new status gets the next unused number, and a retired
/// status keeps its number reserved. `fanta_status_name()` returns a stable snake_case name for
/// each value, the same name that fanta-core uses for its error kinds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FantaStatus {
    /// The call succeeded.
    Ok = 0,
    /// The request's deadline passed before its response arrived. The server may still process
    /// it; a response that arrives later is dropped and counted in `late_responses`.
    Timeout = 1,
    /// The connection closed while the request was in flight. The server may or may not have
    /// processed it, so repeat it only if it is safe to repeat.
    Disconnected = 2,
    /// No connection was routable: none is connected, or all are full, and the pool is set not to
    /// wait, or the deadline passed while waiting for one.
    NoConnection = 3,
    /// The server rejected the request with an error response; the message contains the
    /// server's text.
    Server = 4,
    /// The connection broke the protocol and was closed before the request's response arrived.
    Protocol = 5,
    /// The pool was closed (or freed) before the request completed, or before it was made.
    PoolClosed = 6,
    /// An argument is NULL or invalid, or a configuration setting is out of range; the message
    /// names the argument or the setting.
    InvalidArgument = 7,
    /// A blocking call was made on a library runtime thread, that is from inside a completion
    /// callback, where blocking could stall the requests that would end it.
    BlockingInRuntime = 8,
    /// The pool was opened before this process called `fork()`, and its threads exist only in the
    /// parent. Open a new pool in the child.
    Forked = 9,
    /// The request was cancelled before it completed.
    Cancelled = 10,
    /// An operating system call failed, for example binding the embedded server's port.
    Io = 11,
    /// libfanta hit an internal bug and recovered from it; the message describes it. The handles
    /// involved stay valid and may be freed as usual.
    Panic = 12,
}

impl FantaStatus {
    /// Every status, in numeric order.
    const ALL: [FantaStatus; 13] = [
        FantaStatus::Ok,
        FantaStatus::Timeout,
        FantaStatus::Disconnected,
        FantaStatus::NoConnection,
        FantaStatus::Server,
        FantaStatus::Protocol,
        FantaStatus::PoolClosed,
        FantaStatus::InvalidArgument,
        FantaStatus::BlockingInRuntime,
        FantaStatus::Forked,
        FantaStatus::Cancelled,
        FantaStatus::Io,
        FantaStatus::Panic,
    ];

    /// Returns the stable name as a NUL-terminated string.
    fn name(self) -> &'static str {
        match self {
            FantaStatus::Ok => "ok\0",
            FantaStatus::Timeout => "timeout\0",
            FantaStatus::Disconnected => "disconnected\0",
            FantaStatus::NoConnection => "no_connection\0",
            FantaStatus::Server => "server\0",
            FantaStatus::Protocol => "protocol\0",
            FantaStatus::PoolClosed => "pool_closed\0",
            FantaStatus::InvalidArgument => "invalid_argument\0",
            FantaStatus::BlockingInRuntime => "blocking_in_runtime\0",
            FantaStatus::Forked => "forked\0",
            FantaStatus::Cancelled => "cancelled\0",
            FantaStatus::Io => "io\0",
            FantaStatus::Panic => "panic\0",
        }
    }
}

impl From<ErrorKind> for FantaStatus {
    fn from(kind: ErrorKind) -> FantaStatus {
        match kind {
            ErrorKind::Timeout => FantaStatus::Timeout,
            ErrorKind::Disconnected => FantaStatus::Disconnected,
            ErrorKind::NoConnection => FantaStatus::NoConnection,
            ErrorKind::Server => FantaStatus::Server,
            ErrorKind::Protocol => FantaStatus::Protocol,
            ErrorKind::PoolClosed => FantaStatus::PoolClosed,
            ErrorKind::InvalidArgument => FantaStatus::InvalidArgument,
            ErrorKind::BlockingInRuntime => FantaStatus::BlockingInRuntime,
            ErrorKind::Forked => FantaStatus::Forked,
            ErrorKind::Cancelled => FantaStatus::Cancelled,
        }
    }
}

/// Returns the stable snake_case name of `status`, for example `"no_connection"` for
/// `FANTA_STATUS_NO_CONNECTION`.
///
/// Takes an `int` rather than a `fanta_status`, so that any value may be passed; a value that is
/// not a status returns `"unknown"`.
///
/// Ownership: the returned string is static; do not free it. It is never NULL.
/// Thread-safety: may be called from any thread at any time, including completion callbacks.
#[no_mangle]
pub extern "C" fn fanta_status_name(status: c_int) -> *const c_char {
    let name = FantaStatus::ALL
        .iter()
        .find(|candidate| **candidate as c_int == status)
        .map_or("unknown\0", |known| known.name());
    name.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_statuses_in_numeric_order() {
        for (index, status) in FantaStatus::ALL.iter().enumerate() {
            assert_eq!(*status as usize, index);
        }
    }

    #[test]
    fn status_names_match_core_error_kind_names() {
        for kind in ErrorKind::ALL {
            let status = FantaStatus::from(kind);
            assert_eq!(status.name().trim_end_matches('\0'), kind.name());
        }
    }
}
