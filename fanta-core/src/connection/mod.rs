//! One TCP connection to a Fantaprotocol server, from HELLO to close.
//!
//! # Lifecycle
//!
//! A [`Connection`] exists for exactly one TCP connection whose HELLO exchange has completed
//! ([`handshake`]). Its session task ([`run_session`]) registers it in the pool's registry,
//! then reads responses and writes queued frames until the socket fails, the server closes it,
//! the peer breaks the protocol, or the pool shuts down. After that the connection is closed
//! for good: reconnecting creates a new `Connection` with fresh request ids.
//!
//! # Shared state
//!
//! Callers and the session task share one mutex-protected [`ConnectionState`]: the in-flight
//! table and the outgoing write buffer. A caller keeps the lock just long enough to take an id
//! and append its frame. The session's writer swaps the whole buffer out and writes it with one
//! syscall, so frames from many callers go out together. No oneshot is completed while the lock
//! is held.
//!
//! # Closing
//!
//! [`Connection::close`] records the first cause, stops accepting requests, and fails every
//! waiting caller with that cause. It is idempotent and called by the session on every exit, by
//! the supervisor after the session task ends (which covers a panicking session), and by the
//! pool when it closes.

mod pending;
mod session;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::error::Error;
use crate::protocol::{self, FrameKind};
use crate::stats::Counters;

pub(crate) use pending::Taken;
pub use pending::MAX_SLOTS;
pub(crate) use pending::{Callback, CompletionFn};
use pending::{PendingTable, Responder};
pub(crate) use session::{handshake, run_session, Handshake, GOAWAY_DRAINED};

/// The state callers and the session task share, behind [`Connection::state`].
struct ConnectionState {
    pending: PendingTable,
    write_buffer: BytesMut,
    /// The cause the connection closed with; once set, no request is accepted.
    closed: Option<Error>,
}

/// The reason a connection did not take a request.
#[derive(Debug)]
pub(crate) enum Rejected {
    /// Closed, draining after GOAWAY, or full: the caller should pick another connection.
    Unavailable,
    /// The request can never be sent on this connection.
    Invalid(Error),
}

/// A connected, handshaken connection as the registry and strategies see it.
pub struct Connection {
    addr: String,
    peer: SocketAddr,
    slot: usize,
    /// The cap on requests in flight: the smaller of the client setting and the server's HELLO.
    max_in_flight: u32,
    /// The largest payload the server accepts, from its HELLO `max_frame_length`.
    max_payload: usize,
    /// Mirrors `pending.occupied()` so that strategies read it without the lock.
    in_flight: AtomicU32,
    /// Cleared on GOAWAY and on close; strategies skip connections that do not accept.
    accepting: AtomicBool,
    state: Mutex<ConnectionState>,
    /// Wakes the session's writer when the write buffer goes from empty to non-empty.
    write_ready: Notify,
    counters: Arc<Counters>,
    /// Called when the connection goes from full to having room, so that waiting callers retry.
    on_capacity: Box<dyn Fn() + Send + Sync>,
    completed: AtomicU64,
    /// Wakes the session's deadline timer when a request with an earlier deadline than any
    /// other is queued.
    deadline_changed: Notify,
    /// Makes the session task panic; exercised by supervision tests.
    pub(super) fault: Notify,
}

impl Connection {
    pub(crate) fn new(
        addr: String,
        peer: SocketAddr,
        slot: usize,
        handshake: &Handshake,
        client_max_in_flight: u32,
        counters: Arc<Counters>,
        on_capacity: Box<dyn Fn() + Send + Sync>,
    ) -> Connection {
        let server_cap = handshake.hello.max_in_flight;
        let max_in_flight = if server_cap == 0 {
            client_max_in_flight
        } else {
            client_max_in_flight.min(server_cap)
        };
        let max_payload = handshake
            .hello
            .max_frame_length
            .saturating_sub(protocol::HEADER_LEN) as usize;

        Connection {
            addr,
            peer,
            slot,
            max_in_flight,
            max_payload,
            in_flight: AtomicU32::new(0),
            accepting: AtomicBool::new(true),
            state: Mutex::new(ConnectionState {
                pending: PendingTable::new(),
                write_buffer: BytesMut::with_capacity(16 * 1024),
                closed: None,
            }),
            write_ready: Notify::new(),
            counters,
            on_capacity,
            completed: AtomicU64::new(0),
            deadline_changed: Notify::new(),
            fault: Notify::new(),
        }
    }

    /// The configured `host:port` this connection was opened to.
    pub fn address(&self) -> &str {
        &self.addr
    }

    /// The resolved socket address of the server.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Index of the pool slot that owns this connection.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Requests sent and still without a response, including ones whose callers gave up.
    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The in-flight cap: min(client setting, server's announced limit).
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight
    }

    /// Requests that got a response on this connection.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Whether a strategy may route a request here: accepting and below its in-flight cap.
    #[inline]
    pub fn has_capacity(&self) -> bool {
        self.accepting.load(Ordering::Relaxed) && self.in_flight() < self.max_in_flight
    }

    /// Whether the connection still accepts requests (not draining, not closed).
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, ConnectionState> {
        // A panic while holding this lock leaves the table consistent (every mutation is a
        // single step), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes an id for `payload`, queues its REQUEST frame and returns the pending request.
    ///
    /// At `deadline` the session fails the request with [`Error::Timeout`] unless its response
    /// arrived first.
    pub(crate) fn start_request(
        self: &Arc<Self>,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<PendingRequest, Rejected> {
        let (sender, receiver) = oneshot::channel();
        match self.queue_request(payload, deadline, Responder::Channel(sender)) {
            Ok(id) => Ok(PendingRequest {
                connection: self.clone(),
                id,
                receiver,
                done: false,
            }),
            Err((rejected, _)) => Err(rejected),
        }
    }

    /// Like [`Connection::start_request`], for a submitted request whose completion the
    /// connection runs: with the response, the server's error, [`Error::Timeout`] at
    /// `deadline`, or the cause the connection closes with. Returns the request id, or the
    /// callback back if the connection did not take the request.
    pub(crate) fn start_submitted(
        &self,
        payload: &[u8],
        deadline: Instant,
        callback: Callback,
    ) -> Result<u32, (Rejected, Callback)> {
        match self.queue_request(payload, deadline, Responder::Callback(callback)) {
            Ok(id) => Ok(id),
            Err((rejected, Responder::Callback(callback))) => Err((rejected, callback)),
            Err((_, Responder::Channel(_))) => unreachable!("the responder is returned unchanged"),
        }
    }

    fn queue_request(
        &self,
        payload: &[u8],
        deadline: Instant,
        responder: Responder,
    ) -> Result<u32, (Rejected, Responder)> {
        if payload.len() > self.max_payload {
            let error = Error::invalid(format!(
                "payload of {} bytes exceeds the server's maximum of {} bytes",
                payload.len(),
                self.max_payload
            ));
            return Err((Rejected::Invalid(error), responder));
        }

        let wake_writer;
        let wake_timer;
        let id;
        {
            let mut state = self.lock();
            if state.closed.is_some()
                || !self.accepting.load(Ordering::Relaxed)
                || state.pending.occupied() >= self.max_in_flight
            {
                return Err((Rejected::Unavailable, responder));
            }

            (id, wake_timer) = state.pending.insert(responder, deadline);
            self.in_flight
                .store(state.pending.occupied(), Ordering::Relaxed);
            wake_writer = state.write_buffer.is_empty();
            protocol::encode_frame(&mut state.write_buffer, FrameKind::Request, id, payload);
        }

        if wake_writer {
            self.write_ready.notify_one();
        }
        if wake_timer {
            self.deadline_changed.notify_one();
        }
        Ok(id)
    }

    /// Cancels the submitted request `id` with `serial`: its completion runs with
    /// [`Error::Cancelled`] unless it already ran, and its id stays reserved until the server
    /// responds.
    pub(crate) fn cancel_submitted(&self, id: u32, serial: u64) {
        let taken = self.lock().pending.cancel(id, serial);
        if let Some(responder) = taken {
            responder.respond(Err(Error::Cancelled));
        }
    }

    /// Queues a frame that is not a request (a PONG) for the writer.
    pub(crate) fn queue_frame(&self, kind: FrameKind, id: u32, payload: &[u8]) {
        let wake_writer;
        {
            let mut state = self.lock();
            if state.closed.is_some() {
                return;
            }
            wake_writer = state.write_buffer.is_empty();
            protocol::encode_frame(&mut state.write_buffer, kind, id, payload);
        }
        if wake_writer {
            self.write_ready.notify_one();
        }
    }

    /// Swaps the queued frames into `out` (which must be empty) for the writer.
    pub(crate) fn take_write_buffer(&self, out: &mut BytesMut) {
        let mut state = self.lock();
        std::mem::swap(&mut state.write_buffer, out);
    }

    /// Delivers the RESPONSE and ERROR results in `batch` to the requests waiting on their ids,
    /// taking the lock once for the whole batch, and empties `batch`.
    ///
    /// `taken` is scratch space that the caller keeps between batches to avoid allocating.
    pub(crate) fn complete_batch(
        &self,
        batch: &mut Vec<(u32, Result<Bytes, Error>)>,
        taken: &mut Vec<(Taken, Result<Bytes, Error>)>,
    ) {
        if batch.is_empty() {
            return;
        }

        let was_full;
        {
            let mut state = self.lock();
            was_full = state.pending.occupied() >= self.max_in_flight;
            for (id, result) in batch.drain(..) {
                taken.push((state.pending.take(id), result));
            }
            self.in_flight
                .store(state.pending.occupied(), Ordering::Relaxed);
        }

        // The lock is released: now the callers are woken.
        let mut completed = 0;
        for (slot, result) in taken.drain(..) {
            match slot {
                Taken::Waiting(responder) => {
                    completed += 1;
                    // An awaiting caller may have been dropped between the take and this send.
                    // Its guard then found the slot already free, and the result is discarded.
                    responder.respond(result);
                }
                Taken::Abandoned => {
                    completed += 1;
                    self.counters.record_late_response();
                }
                Taken::Unknown => self.counters.record_late_response(),
            }
        }
        self.completed.fetch_add(completed, Ordering::Relaxed);

        if was_full && self.is_accepting() {
            (self.on_capacity)();
        }
    }

    /// Returns the earliest deadline of a request in flight, possibly of one that already got its
    /// response.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.lock().pending.next_deadline()
    }

    /// Fails every request whose deadline has passed with [`Error::Timeout`]. Their ids stay
    /// reserved until the server responds, so late responses are dropped and counted.
    pub(crate) fn expire_due(&self) {
        let expired = self.lock().pending.expire(Instant::now());
        for responder in expired {
            responder.respond(Err(Error::Timeout));
        }
    }

    /// Stops routing to this connection after a GOAWAY; requests in flight still complete.
    pub(crate) fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Relaxed);
    }

    /// Closes the connection with `cause` and fails every waiting caller with it.
    ///
    /// Only the first call has an effect. The callers are failed after the lock is released.
    pub(crate) fn close(&self, cause: Error) {
        self.accepting.store(false, Ordering::Relaxed);
        let waiting = {
            let mut state = self.lock();
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(cause.clone());
            state.write_buffer = BytesMut::new();
            let waiting = state.pending.drain();
            self.in_flight.store(0, Ordering::Relaxed);
            waiting
        };

        for responder in waiting {
            responder.respond(Err(cause.clone()));
        }
        // The writer may be parked; wake it so that the session notices the close.
        self.write_ready.notify_one();
    }

    /// The cause the connection closed with, if it has.
    pub fn close_cause(&self) -> Option<Error> {
        self.lock().closed.clone()
    }

    pub(crate) fn inject_panic(&self) {
        self.fault.notify_one();
    }

    fn abandon(&self, id: u32) {
        self.lock().pending.abandon(id);
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("slot", &self.slot)
            .field("in_flight", &self.in_flight())
            .field("max_in_flight", &self.max_in_flight)
            .field("accepting", &self.is_accepting())
            .finish()
    }
}

/// A request that was queued on a connection and waits for its response.
///
/// # Cancel safety
///
/// Dropping it before the response arrives marks the id as abandoned: the id stays reserved
/// until the server answers it (that late answer is then dropped and counted) or the
/// connection closes, so the answer can never reach another caller.
pub(crate) struct PendingRequest {
    connection: Arc<Connection>,
    id: u32,
    receiver: oneshot::Receiver<Result<Bytes, Error>>,
    done: bool,
}

impl PendingRequest {
    pub(crate) async fn response(mut self) -> Result<Bytes, Error> {
        let result = (&mut self.receiver).await;
        self.done = true;
        match result {
            Ok(result) => result,
            // Every path that frees a waiting slot sends on its sender first, so this only
            // happens if the connection state is dropped without `close`. It is reported as a
            // disconnect rather than a hang.
            Err(_) => Err(Error::Disconnected("connection state dropped".into())),
        }
    }
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        if !self.done {
            self.receiver.close();
            self.connection.abandon(self.id);
        }
    }
}
