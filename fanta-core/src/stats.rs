//! Pool counters and the snapshot type [`Stats`].
//!
//! Counters are relaxed atomics updated on the request path; a snapshot reads each one once,
//! so the figures in one snapshot are individually exact but not taken at a single instant.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ErrorKind;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    completed: AtomicU64,
    errors: [AtomicU64; ErrorKind::COUNT],
    reconnects: AtomicU64,
    late_responses: AtomicU64,
}

impl Counters {
    pub(crate) fn record_success(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_error(&self, kind: ErrorKind) {
        self.errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_late_response(&self) {
        self.late_responses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub(crate) fn errors(&self) -> ErrorCounts {
        ErrorCounts(std::array::from_fn(|i| {
            self.errors[i].load(Ordering::Relaxed)
        }))
    }

    pub(crate) fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    pub(crate) fn late_responses(&self) -> u64 {
        self.late_responses.load(Ordering::Relaxed)
    }
}

/// Failed requests, counted by [`ErrorKind`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts(pub [u64; ErrorKind::COUNT]);

impl ErrorCounts {
    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.0[kind as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Iterates over `(kind, count)` pairs in [`ErrorKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (ErrorKind, u64)> + '_ {
        ErrorKind::ALL.iter().map(|&kind| (kind, self.get(kind)))
    }
}

/// The lifecycle stage of a pool's connection slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnectionState {
    /// Opening the TCP connection or waiting for the server's HELLO.
    Connecting = 0,
    /// Registered and routable.
    Connected = 1,
    /// GOAWAY received: no new requests, in-flight ones still complete.
    Draining = 2,
    /// Disconnected, waiting out the backoff delay before the next attempt.
    Backoff = 3,
    /// The pool closed; the slot will not reconnect.
    Closed = 4,
}

impl ConnectionState {
    pub(crate) fn from_u8(value: u8) -> ConnectionState {
        match value {
            0 => ConnectionState::Connecting,
            1 => ConnectionState::Connected,
            2 => ConnectionState::Draining,
            3 => ConnectionState::Backoff,
            _ => ConnectionState::Closed,
        }
    }

    /// A stable snake_case name, as used by the C and Python bindings.
    pub fn name(self) -> &'static str {
        match self {
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Draining => "draining",
            ConnectionState::Backoff => "backoff",
            ConnectionState::Closed => "closed",
        }
    }
}

/// One connection slot in a [`Stats`] snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionStats {
    /// The configured `host:port`.
    pub address: String,
    pub state: ConnectionState,
    /// Requests sent on the slot's current connection and still without a response.
    pub in_flight: u32,
    /// Requests that got a response on the slot's current connection.
    pub completed: u64,
    /// The most recent connect failure or disconnect cause of this slot, kept after the slot
    /// connects again; `None` if it never failed.
    pub last_error: Option<String>,
}

/// A snapshot of a pool's counters; see [`crate::Pool::stats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Connection slots the pool was configured with (addresses x connections per address).
    pub configured: usize,
    /// Connections now registered and routable.
    pub connected: usize,
    /// Requests now in flight over all connections.
    pub in_flight: u64,
    /// Requests that ended with a response.
    pub completed: u64,
    /// Requests that ended with an error, by kind.
    pub errors: ErrorCounts,
    /// Successful connects after a slot's first one.
    pub reconnects: u64,
    /// RESPONSE or ERROR frames whose id was not in flight (typically responses that arrived after
    /// their caller timed out); dropped, never delivered.
    pub late_responses: u64,
    pub connections: Vec<ConnectionStats>,
}
