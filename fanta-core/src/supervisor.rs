//! The supervisor of one connection slot: connect, serve, and reconnect with backoff.
//!
//! Each pool slot (one of the `connections_per_address` connections to one address) has one
//! supervisor task. It owns the slot's connection attempts and the session task of the current
//! connection, and it is the only writer of the slot's state. It stops when the pool shuts down;
//! by then it has awaited its session task, so nothing it started is left running.
//!
//! A session that panics is caught here through its `JoinHandle`: the supervisor fails the
//! connection's waiting callers (the registry entry was already dropped by unwinding) and
//! reconnects as after any other disconnect.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::connection::{handshake, run_session, Connection, GOAWAY_DRAINED};
use crate::error::Error;
use crate::pool::PoolShared;
use crate::protocol::Decoder;
use crate::stats::ConnectionState;

/// Connect failures in a row that are logged at warn level; later ones are logged at debug,
/// with the attempt count, until the slot connects again.
const WARN_FAILURES: u32 = 3;

/// One connection slot of a pool.
pub(crate) struct Slot {
    pub(crate) index: usize,
    pub(crate) address: String,
    state: AtomicU8,
    current: Mutex<Option<Arc<Connection>>>,
    last_error: Mutex<Option<String>>,
}

impl Slot {
    pub(crate) fn new(index: usize, address: String) -> Slot {
        Slot {
            index,
            address,
            state: AtomicU8::new(ConnectionState::Connecting as u8),
            current: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_last_error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    pub(crate) fn state(&self) -> ConnectionState {
        let state = ConnectionState::from_u8(self.state.load(Ordering::Relaxed));
        match (state, self.current()) {
            (ConnectionState::Connected, Some(connection)) if !connection.is_accepting() => {
                ConnectionState::Draining
            }
            _ => state,
        }
    }

    fn set_state(&self, state: ConnectionState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    pub(crate) fn current(&self) -> Option<Arc<Connection>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_current(&self, connection: Option<Arc<Connection>>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = connection;
    }
}

/// Runs the connect-serve-reconnect loop of `slot` until the pool shuts down.
pub(crate) async fn supervise(pool: Arc<PoolShared>, slot: Arc<Slot>) {
    let decoder = Decoder::new(pool.config.max_frame_length);
    let backoff = pool.config.backoff;
    let mut attempt: u32 = 0;
    let mut connected_before = false;

    while !pool.shutdown.is_triggered() {
        slot.set_state(ConnectionState::Connecting);
        let attempted = tokio::select! {
            result = handshake(&slot.address, &decoder, pool.config.connect_timeout) => result,
            _ = pool.shutdown.wait() => break,
        };

        match attempted {
            Ok(established) => {
                if connected_before {
                    pool.counters.record_reconnect();
                }
                connected_before = true;
                let started = tokio::time::Instant::now();
                serve(&pool, &slot, established, decoder.clone(), attempt).await;
                // Only a connection that stayed up resets the backoff. A server that completes
                // HELLO and then drops every connection is retried ever more slowly instead of
                // in a tight loop.
                if started.elapsed() >= backoff.max {
                    attempt = 0;
                }
            }
            Err(error) => {
                if attempt < WARN_FAILURES {
                    tracing::warn!(addr = %slot.address, conn = slot.index, %error, attempt, "connect failed");
                } else {
                    tracing::debug!(addr = %slot.address, conn = slot.index, %error, attempt, "connect failed");
                }
                slot.set_last_error(error.to_string());
            }
        }

        if pool.shutdown.is_triggered() {
            break;
        }
        let delay = backoff.delay(attempt);
        attempt = attempt.saturating_add(1);
        slot.set_state(ConnectionState::Backoff);
        if attempt <= WARN_FAILURES {
            tracing::info!(addr = %slot.address, conn = slot.index, delay_ms = delay.as_millis() as u64, attempt, "reconnecting after delay");
        } else {
            tracing::debug!(addr = %slot.address, conn = slot.index, delay_ms = delay.as_millis() as u64, attempt, "reconnecting after delay");
        }

        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = pool.shutdown.wait() => break,
        }
    }

    slot.set_state(ConnectionState::Closed);
}

/// Serves one established connection until its session ends, then fails what it left behind.
async fn serve(
    pool: &Arc<PoolShared>,
    slot: &Slot,
    established: crate::connection::Handshake,
    decoder: Decoder,
    attempt: u32,
) {
    let group = pool.group.clone();
    let on_capacity = {
        let capacity = pool.capacity.clone();
        Box::new(move || capacity.notify_one())
    };
    let connection = Arc::new(Connection::new(
        slot.address.clone(),
        established.peer,
        slot.index,
        &established,
        pool.config.max_in_flight,
        pool.counters.clone(),
        on_capacity,
    ));
    tracing::info!(
        addr = %slot.address,
        conn = slot.index,
        peer = %established.peer,
        max_in_flight = connection.max_in_flight(),
        server_max_frame_length = established.hello.max_frame_length,
        "connected"
    );

    slot.set_current(Some(connection.clone()));
    slot.set_state(ConnectionState::Connected);

    let session = pool.runtime.handle().spawn(run_session(
        established.stream,
        established.leftover,
        connection.clone(),
        group,
        decoder,
        pool.shutdown.clone(),
        pool.config.timeout,
    ));
    let cause = match session.await {
        Ok(cause) => cause,
        Err(error) if error.is_panic() => {
            tracing::error!(addr = %slot.address, conn = slot.index, "connection task panicked");
            Error::Disconnected("connection task panicked".into())
        }
        Err(_) => Error::Disconnected("connection task was cancelled".into()),
    };

    // Idempotent after a normal exit; after a panic this is what fails the waiting callers.
    connection.close(cause.clone());
    slot.set_current(None);
    if !matches!(cause, Error::PoolClosed) {
        slot.set_last_error(cause.to_string());
    }

    let graceful = matches!(&cause, Error::Disconnected(reason) if reason == GOAWAY_DRAINED);
    match cause {
        Error::PoolClosed => {}
        _ if graceful => {
            tracing::info!(addr = %slot.address, conn = slot.index, completed = connection.completed(), "disconnected after GOAWAY");
        }
        _ if attempt <= WARN_FAILURES => {
            tracing::warn!(addr = %slot.address, conn = slot.index, error = %cause, completed = connection.completed(), "disconnected");
        }
        _ => {
            tracing::debug!(addr = %slot.address, conn = slot.index, error = %cause, completed = connection.completed(), attempt, "disconnected again");
        }
    }
}
