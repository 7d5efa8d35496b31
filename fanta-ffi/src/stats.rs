//! Stats snapshots as plain C structs.

use std::ffi::{c_char, c_int};

use fanta_core::{ConnectionState, ErrorCounts, ErrorKind};

use crate::guard::{borrow, guard, out, Failure};
use crate::pool::FantaPool;
use crate::status::FantaStatus;

/// Failed requests of a pool, counted by the status they ended with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FantaErrorCounts {
    pub timeout: u64,
    pub disconnected: u64,
    pub no_connection: u64,
    pub server: u64,
    pub protocol: u64,
    pub pool_closed: u64,
    pub invalid_argument: u64,
    pub blocking_in_runtime: u64,
    pub forked: u64,
    pub cancelled: u64,
}

impl From<&ErrorCounts> for FantaErrorCounts {
    fn from(counts: &ErrorCounts) -> FantaErrorCounts {
        FantaErrorCounts {
            timeout: counts.get(ErrorKind::Timeout),
            disconnected: counts.get(ErrorKind::Disconnected),
            no_connection: counts.get(ErrorKind::NoConnection),
            server: counts.get(ErrorKind::Server),
            protocol: counts.get(ErrorKind::Protocol),
            pool_closed: counts.get(ErrorKind::PoolClosed),
            invalid_argument: counts.get(ErrorKind::InvalidArgument),
            blocking_in_runtime: counts.get(ErrorKind::BlockingInRuntime),
            forked: counts.get(ErrorKind::Forked),
            cancelled: counts.get(ErrorKind::Cancelled),
        }
    }
}

/// A snapshot of a pool's counters, filled by `fanta_pool_stats()`.
///
/// Each field is read once from a counter that requests update without locking, so each figure
/// is exact but the snapshot is not taken at a single instant.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FantaStats {
    /// Connection slots configured: addresses times connections per address.
    pub configured: usize,
    /// Connections now registered and routable.
    pub connected: usize,
    /// Requests now in flight over all connections.
    pub in_flight: u64,
    /// Requests that ended with a response.
    pub completed: u64,
    /// Requests that ended with an error, in total.
    pub errors_total: u64,
    /// Requests that ended with an error, by status.
    pub errors: FantaErrorCounts,
    /// Successful connects after a slot's first one.
    pub reconnects: u64,
    /// Responses that arrived for no request in flight, typically after their request timed
    /// out; they are dropped, never delivered.
    pub late_responses: u64,
}

/// The lifecycle state of a connection slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FantaConnectionState {
    /// Opening the TCP connection or waiting for the server's HELLO.
    Connecting = 0,
    /// Registered and routable.
    Connected = 1,
    /// The server sent GOAWAY: no new requests, the ones in flight still complete.
    Draining = 2,
    /// Disconnected, waiting out the backoff delay before the next attempt.
    Backoff = 3,
    /// The pool is closed; the slot does not reconnect.
    Closed = 4,
}

impl FantaConnectionState {
    const ALL: [FantaConnectionState; 5] = [
        FantaConnectionState::Connecting,
        FantaConnectionState::Connected,
        FantaConnectionState::Draining,
        FantaConnectionState::Backoff,
        FantaConnectionState::Closed,
    ];

    /// Returns the stable name as a NUL-terminated string, the same as fanta-core's.
    fn name(self) -> &'static str {
        match self {
            FantaConnectionState::Connecting => "connecting\0",
            FantaConnectionState::Connected => "connected\0",
            FantaConnectionState::Draining => "draining\0",
            FantaConnectionState::Backoff => "backoff\0",
            FantaConnectionState::Closed => "closed\0",
        }
    }
}

/// Returns the stable snake_case name of a connection state, for example `"connected"` for
/// `FANTA_CONNECTION_STATE_CONNECTED`; a value that is not a state returns `"unknown"`.
///
/// Ownership: the returned string is static; do not free it. It is never NULL.
/// Thread-safety: may be called from any thread at any time.
#[no_mangle]
pub extern "C" fn fanta_connection_state_name(state: c_int) -> *const c_char {
    let name = FantaConnectionState::ALL
        .iter()
        .find(|candidate| **candidate as c_int == state)
        .map_or("unknown\0", |known| known.name());
    name.as_ptr().cast()
}

impl From<ConnectionState> for FantaConnectionState {
    fn from(state: ConnectionState) -> FantaConnectionState {
        match state {
            ConnectionState::Connecting => FantaConnectionState::Connecting,
            ConnectionState::Connected => FantaConnectionState::Connected,
            ConnectionState::Draining => FantaConnectionState::Draining,
            ConnectionState::Backoff => FantaConnectionState::Backoff,
            ConnectionState::Closed => FantaConnectionState::Closed,
        }
    }
}

/// One connection slot of a pool, filled by `fanta_pool_connection_stats()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FantaConnectionStats {
    /// The configured `host:port`, NUL-terminated. Owned by the pool: valid until
    /// `fanta_pool_free()`; do not free it.
    pub address: *const c_char,
    pub state: FantaConnectionState,
    /// Requests sent on the slot's current connection and still awaiting their response.
    pub in_flight: u32,
    /// Requests that received their response on the slot's current connection.
    pub completed: u64,
}

/// Fills `*stats_out` with a snapshot of the pool's counters.
///
/// `stats_out` is a caller-owned struct; nothing is allocated.
///
/// Returns:
/// - `FANTA_STATUS_OK`: `*stats_out` is filled;
/// - `FANTA_STATUS_INVALID_ARGUMENT`: `pool` or `stats_out` is NULL;
/// - `FANTA_STATUS_FORKED`: the pool was opened before this process forked.
///
/// Thread-safety: may be called from any thread, also concurrently with requests and from a
/// completion callback.
#[no_mangle]
pub extern "C" fn fanta_pool_stats(
    pool: *const FantaPool,
    stats_out: *mut FantaStats,
) -> FantaStatus {
    guard("fanta_pool_stats", || {
        // SAFETY: a non-NULL pool is live until fanta_pool_free, which must not run concurrently.
        let pool = unsafe { borrow(pool, "pool")? };
        let stats_out = out(stats_out, "stats_out")?;
        pool.check_not_forked()?;

        let stats = pool.pool().stats();
        let snapshot = FantaStats {
            configured: stats.configured,
            connected: stats.connected,
            in_flight: stats.in_flight,
            completed: stats.completed,
            errors_total: stats.errors.total(),
            errors: FantaErrorCounts::from(&stats.errors),
            reconnects: stats.reconnects,
            late_responses: stats.late_responses,
        };

        // SAFETY: `out` checked that stats_out is not NULL; the caller guarantees it is writable.
        unsafe { stats_out.write(snapshot) };
        Ok(())
    })
}

/// Fills `entries` with the state of each of the pool's connection slots, in slot order (the
/// addresses in the order they were added, each repeated `connections_per_address` times).
///
/// `entries` is a caller-owned array of `capacity` entries; at most `capacity` are written, so
/// a short array gets the first slots. `*count_out` is set to the pool's number of slots, which
/// may exceed `capacity`; call with `entries` NULL and `capacity` 0 to learn it. The
/// `address` strings in the entries belong to the pool and stay valid until
/// `fanta_pool_free()`.
///
/// Returns:
/// - `FANTA_STATUS_OK`: `*count_out` is set and `min(capacity, *count_out)` entries are filled;
/// - `FANTA_STATUS_INVALID_ARGUMENT`: `pool` or `count_out` is NULL, or `entries` is NULL
///   with a non-zero `capacity`;
/// - `FANTA_STATUS_FORKED`: the pool was opened before this process forked.
///
/// Thread-safety: as `fanta_pool_stats()`.
#[no_mangle]
pub extern "C" fn fanta_pool_connection_stats(
    pool: *const FantaPool,
    entries: *mut FantaConnectionStats,
    capacity: usize,
    count_out: *mut usize,
) -> FantaStatus {
    guard("fanta_pool_connection_stats", || {
        // SAFETY: a non-NULL pool is live until fanta_pool_free, which must not run concurrently.
        let pool = unsafe { borrow(pool, "pool")? };
        let count_out = out(count_out, "count_out")?;
        if entries.is_null() && capacity != 0 {
            return Err(Failure::invalid(format!(
                "entries is NULL but capacity is {capacity}"
            )));
        }
        pool.check_not_forked()?;

        let stats = pool.pool().stats();
        for (index, connection) in stats.connections.iter().take(capacity).enumerate() {
            let entry = FantaConnectionStats {
                address: pool.address(&connection.address),
                state: connection.state.into(),
                in_flight: connection.in_flight,
                completed: connection.completed,
            };
            // SAFETY: entries is not NULL (checked above, as capacity > index) and the caller
            // guarantees `capacity` writable entries.
            unsafe { entries.add(index).write(entry) };
        }

        // SAFETY: `out` checked that count_out is not NULL; the caller guarantees it is writable.
        unsafe { count_out.write(stats.connections.len()) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_match_core_state_names() {
        let states = [
            ConnectionState::Connecting,
            ConnectionState::Connected,
            ConnectionState::Draining,
            ConnectionState::Backoff,
            ConnectionState::Closed,
        ];
        for state in states {
            let converted = FantaConnectionState::from(state);
            assert_eq!(converted.name().trim_end_matches('\0'), state.name());
            assert_eq!(converted as usize, state as usize);
        }
    }
}
