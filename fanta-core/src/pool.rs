//! The routing pool: the public front of the crate.
//!
//! A [`Pool`] owns one supervisor task per connection slot (see [`crate::supervisor`]), the
//! registry group its live connections register in, the routing strategy and the counters. A
//! request never goes through a central task: the caller loads the registry snapshot, the
//! strategy picks a connection, and the caller queues its frame on that connection directly.
//!
//! # Lifecycle
//!
//! [`Pool::open`] returns at once; connections are made in the background, so a pool may be
//! opened before its server is up. Requests made while nothing is connected wait for a
//! connection up to their deadline, or fail at once with [`Error::NoConnection`] if the pool is
//! configured not to wait.
//!
//! [`Pool::close`], or dropping the pool, stops every supervisor and session task, fails every
//! request in flight with [`Error::PoolClosed`] before it returns, and makes later requests fail
//! with the same error. Closing does not block on the runtime, so it is safe from any thread,
//! from inside an async task and in a forked child.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::config::{validate_timeout, PoolConfig};
use crate::connection::{Callback, CompletionFn, Connection, PendingRequest, Rejected};
use crate::error::Error;
use crate::registry::Group;
use crate::runtime::{self, RuntimeHandle};
use crate::shutdown::Shutdown;
use crate::stats::{ConnectionState, ConnectionStats, Counters, Stats};
use crate::strategy::Strategy;
use crate::supervisor::{supervise, Slot};

/// A pool of multiplexed connections that routes each request to one of them.
///
/// `Pool` is `Send + Sync`; share it between threads or tasks behind an `Arc`. Dropping it
/// closes it, as [`Pool::close`] does.
pub struct Pool {
    shared: Arc<PoolShared>,
}

/// The state shared by the pool handle, its supervisors and in-progress requests.
pub(crate) struct PoolShared {
    pub(crate) config: PoolConfig,
    pub(crate) group: Group<Arc<Connection>>,
    /// Wakes one caller waiting for room each time a full connection frees a slot.
    pub(crate) capacity: Arc<tokio::sync::Notify>,
    strategy: Arc<dyn Strategy>,
    slots: Vec<Arc<Slot>>,
    pub(crate) shutdown: Arc<Shutdown>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) runtime: RuntimeHandle,
    /// Source of the serial numbers that identify submitted requests for cancellation.
    next_serial: AtomicU64,
}

impl Pool {
    /// Validates `config`, starts one supervisor per connection slot and returns the pool.
    ///
    /// Returns before any connection is made.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the first invalid setting.
    pub fn open(config: PoolConfig) -> Result<Pool, Error> {
        let strategy = config.validate()?;
        let runtime = runtime::handle();

        let slots: Vec<Arc<Slot>> = config
            .addresses
            .iter()
            .flat_map(|address| std::iter::repeat_n(address, config.connections_per_address))
            .enumerate()
            .map(|(index, address)| Arc::new(Slot::new(index, address.clone())))
            .collect();

        let shared = Arc::new(PoolShared {
            config,
            group: Group::standalone(),
            capacity: Arc::new(tokio::sync::Notify::new()),
            strategy,
            slots,
            shutdown: Arc::new(Shutdown::new()),
            counters: Arc::new(Counters::default()),
            runtime,
            next_serial: AtomicU64::new(1),
        });

        for slot in &shared.slots {
            shared
                .runtime
                .handle()
                .spawn(supervise(shared.clone(), slot.clone()));
        }
        Ok(Pool { shared })
    }

    /// Sends `payload` with the pool's default deadline and returns the response payload.
    ///
    /// The returned future can be awaited on any executor. The deadline is enforced by the
    /// connection's session task, and the timer of a wait for a routable connection runs on the
    /// library's runtime.
    ///
    /// # Errors
    ///
    /// Every [`Error`] kind except [`Error::BlockingInRuntime`]; see each variant.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes abandons the request. If its frame was already
    /// queued, the server still answers it; that answer is dropped and counted as a late
    /// response, and its id stays reserved until then, so it never reaches another caller.
    pub fn request<'a, P>(&'a self, payload: P) -> RequestFuture<'a>
    where
        P: AsRef<[u8]> + Send + 'a,
    {
        self.request_with_timeout(payload, self.shared.config.timeout)
    }

    /// Like [`Pool::request`], with a deadline of `timeout` from now instead of the default.
    ///
    /// # Errors
    ///
    /// As [`Pool::request`]; [`Error::InvalidArgument`] if `timeout` is zero or over one year.
    ///
    /// # Cancel safety
    ///
    /// As [`Pool::request`]: dropping the future abandons the request, and its late response
    /// is dropped and counted.
    pub fn request_with_timeout<'a, P>(&'a self, payload: P, timeout: Duration) -> RequestFuture<'a>
    where
        P: AsRef<[u8]> + Send + 'a,
    {
        let shared = &self.shared;
        RequestFuture {
            inner: Box::pin(async move { shared.request(payload.as_ref(), timeout).await }),
        }
    }

    /// Sends `payload` and blocks the calling thread until the response or an error.
    ///
    /// Many threads may call this at once; none needs a runtime of its own. `timeout` of
    /// `None` uses the pool's default deadline.
    ///
    /// # Errors
    ///
    /// [`Error::BlockingInRuntime`] when called from a thread that runs a tokio runtime (an
    /// async task, or a completion callback of [`Pool::submit`]): blocking there could stall
    /// the tasks that would complete the request. Otherwise as [`Pool::request`].
    pub fn request_blocking(
        &self,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Bytes, Error> {
        if runtime::in_runtime_context() {
            self.shared
                .counters
                .record_error(Error::BlockingInRuntime.kind());
            return Err(Error::BlockingInRuntime);
        }
        if self.shared.runtime.is_stale() {
            return Err(Error::Forked);
        }

        let timeout = timeout.unwrap_or(self.shared.config.timeout);
        self.shared
            .runtime
            .handle()
            .block_on(self.shared.request(payload, timeout))
    }

    /// Starts a request in the background and calls `on_complete` with its result.
    ///
    /// `on_complete` runs exactly once unless this returns an error, in which case it is
    /// dropped without being called. It runs on one of the library runtime's threads, with two
    /// exceptions: a completion with [`Error::PoolClosed`] may run on the thread that closes or
    /// drops the pool, and one with [`Error::Cancelled`] on the thread that calls
    /// [`RequestHandle::cancel`]. It must not block. On a runtime thread, blocking calls on any
    /// pool fail with [`Error::BlockingInRuntime`].
    ///
    /// When a connection is routable, the request is queued from the calling thread and the
    /// connection runs the completion; no task is spawned. Otherwise a task waits for a
    /// connection until the deadline.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an invalid `timeout`, [`Error::PoolClosed`] if the pool
    /// is closed, [`Error::Forked`] in a forked child.
    pub fn submit<F>(
        &self,
        payload: impl Into<Bytes>,
        timeout: Option<Duration>,
        on_complete: F,
    ) -> Result<RequestHandle, Error>
    where
        F: FnOnce(Result<Bytes, Error>) + Send + 'static,
    {
        if self.shared.runtime.is_stale() {
            return Err(Error::Forked);
        }
        let timeout = timeout.unwrap_or(self.shared.config.timeout);
        validate_timeout("timeout", timeout)?;
        if self.shared.shutdown.is_triggered() {
            return Err(Error::PoolClosed);
        }

        let deadline = Instant::now() + timeout;
        let counters = self.shared.counters.clone();
        let function: CompletionFn = Box::new(move |result: Result<Bytes, Error>| {
            match &result {
                Ok(_) => counters.record_success(),
                Err(error) => counters.record_error(error.kind()),
            }
            on_complete(result);
        });
        let serial = self.shared.next_serial.fetch_add(1, Ordering::Relaxed);
        let callback = Callback::new(function, serial);
        let payload = payload.into();

        // Fast path: queue the request on a routable connection from this thread; the
        // connection runs the completion, so no task is spawned.
        let mut callback = match self.shared.try_submit(&payload, deadline, callback) {
            Ok(handle) => return Ok(handle),
            Err(callback) => callback,
        };

        // Slow path (nothing routable, or an error to report): a task waits for a connection
        // and runs the completion. Aborting it runs the completion with Cancelled.
        let shared = self.shared.clone();
        let task = self.shared.runtime.handle().spawn(async move {
            let result = shared.request_until(&payload, deadline).await;
            callback.call(result);
        });
        Ok(RequestHandle {
            inner: HandleInner::Task(task.abort_handle()),
        })
    }

    /// Closes the pool: stops reconnecting, closes every connection and fails every request in
    /// flight or waiting for a connection with [`Error::PoolClosed`] before returning.
    ///
    /// Idempotent. Does not wait for the background tasks to exit; they stop on their own
    /// shortly after. The library runtime's worker threads are shared by all pools and stay
    /// for the life of the process.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether [`Pool::close`] was called (or the pool is a forked child's copy being dropped).
    pub fn is_closed(&self) -> bool {
        self.shared.shutdown.is_triggered()
    }

    /// Returns a snapshot of the pool's counters and connections.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Connections now registered and routable.
    pub fn connected(&self) -> usize {
        self.shared.group.len()
    }

    /// Waits until at least `count` connections are routable, or `timeout` passes.
    /// Returns whether the count was reached; `false` at once if the pool is closed or was
    /// opened before this process forked.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future only stops the wait; it changes nothing in the pool.
    pub async fn wait_connected(&self, count: usize, timeout: Duration) -> bool {
        if self.shared.runtime.is_stale() {
            // The connections in a forked child's copy of the pool are not served by anything.
            return false;
        }

        let group = &self.shared.group;
        let shutdown = &self.shared.shutdown;
        let wait = async {
            loop {
                let changed = group.changed();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if group.len() >= count {
                    return true;
                }
                if shutdown.is_triggered() {
                    return false;
                }
                changed.await;
            }
        };
        let runtime = self.shared.runtime.clone();
        InRuntime {
            runtime,
            inner: Box::pin(
                async move { tokio::time::timeout(timeout, wait).await.unwrap_or(false) },
            ),
        }
        .await
    }

    /// Blocking form of [`Pool::wait_connected`].
    ///
    /// # Errors
    ///
    /// [`Error::BlockingInRuntime`] inside a tokio runtime.
    pub fn wait_connected_blocking(&self, count: usize, timeout: Duration) -> Result<bool, Error> {
        if runtime::in_runtime_context() {
            return Err(Error::BlockingInRuntime);
        }
        if self.shared.runtime.is_stale() {
            return Err(Error::Forked);
        }
        Ok(self
            .shared
            .runtime
            .handle()
            .block_on(self.wait_connected(count, timeout)))
    }

    /// The configuration the pool was opened with.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// The registry group the pool's connections are registered in.
    pub fn registry_group(&self) -> &Group<Arc<Connection>> {
        &self.shared.group
    }

    /// The strategy routing this pool's requests.
    pub fn strategy(&self) -> &Arc<dyn Strategy> {
        &self.shared.strategy
    }

    /// Makes the session task of slot `slot` panic, to exercise supervision in tests.
    #[doc(hidden)]
    pub fn inject_session_panic(&self, slot: usize) {
        if let Some(connection) = self.shared.slots.get(slot).and_then(|s| s.current()) {
            connection.inject_panic();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("addresses", &self.shared.config.addresses)
            .field("connected", &self.connected())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl PoolShared {
    /// Routes and sends one request and waits for its response, all within `timeout`.
    async fn request(&self, payload: &[u8], timeout: Duration) -> Result<Bytes, Error> {
        let result = self.request_unrecorded(payload, timeout).await;
        match &result {
            Ok(_) => self.counters.record_success(),
            Err(error) => self.counters.record_error(error.kind()),
        }
        result
    }

    async fn request_unrecorded(&self, payload: &[u8], timeout: Duration) -> Result<Bytes, Error> {
        validate_timeout("timeout", timeout)?;
        self.request_until(payload, Instant::now() + timeout).await
    }

    /// Routes and sends one request and waits for its response, all before `deadline`.
    async fn request_until(&self, payload: &[u8], deadline: Instant) -> Result<Bytes, Error> {
        if self.runtime.is_stale() {
            return Err(Error::Forked);
        }

        // Fast path: a routable connection exists. No timer is armed here: the connection's
        // session fails the request at its deadline.
        let pending = match self.try_route(payload, deadline)? {
            Some(pending) => pending,
            None => {
                if !self.config.wait_for_connection {
                    return Err(Error::NoConnection);
                }
                // The routing wait runs its own timer, which needs the library runtime's
                // context when the caller polls from another executor.
                let wait =
                    tokio::time::timeout_at(deadline, self.wait_and_route(payload, deadline));
                let routed = InRuntime {
                    runtime: self.runtime.clone(),
                    inner: Box::pin(wait),
                };
                match routed.await {
                    Ok(routed) => routed?,
                    Err(_) => return Err(Error::NoConnection),
                }
            }
        };

        pending.response().await
    }

    /// Offers a request to the routable connections in the strategy's order until one takes it.
    ///
    /// `start` queues the request on one connection; on rejection it hands `carried` (the
    /// request's completion, if it has one) back for the next attempt.
    #[inline]
    fn offer<T, C>(
        &self,
        mut carried: C,
        mut start: impl FnMut(&Arc<Connection>, C) -> Result<T, (Rejected, C)>,
    ) -> Offer<T, C> {
        if self.shutdown.is_triggered() {
            return Offer::Failed(Error::PoolClosed, carried);
        }

        let snapshot = self.group.load();
        // A pick can race with a GOAWAY, a close or other callers filling the connection, so a
        // failed attempt picks again. At most one attempt per entry keeps the loop finite.
        for _ in 0..snapshot.len() {
            let Some(index) = self.strategy.pick(&snapshot) else {
                return Offer::NoRoom(carried);
            };
            let Some(entry) = snapshot.get(index) else {
                let error = Error::invalid(format!(
                    "strategy {:?} picked index {index} of {} connections",
                    self.strategy.name(),
                    snapshot.len()
                ));
                return Offer::Failed(error, carried);
            };
            match start(entry.value(), carried) {
                Ok(taken) => return Offer::Taken(taken),
                Err((Rejected::Unavailable, returned)) => carried = returned,
                Err((Rejected::Invalid(error), returned)) => return Offer::Failed(error, returned),
            }
        }
        Offer::NoRoom(carried)
    }

    /// Picks a connection and queues the request on it, or returns `None` if none has room.
    #[inline]
    fn try_route(
        &self,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<Option<PendingRequest>, Error> {
        let start = |connection: &Arc<Connection>, ()| {
            connection
                .start_request(payload, deadline)
                .map_err(|rejected| (rejected, ()))
        };
        match self.offer((), start) {
            Offer::Taken(pending) => Ok(Some(pending)),
            Offer::NoRoom(()) => Ok(None),
            Offer::Failed(error, ()) => Err(error),
        }
    }

    /// Queues a submitted request on a routable connection, or returns its callback if none
    /// takes it (nothing routable, the pool closed, or an invalid request, which the slow path
    /// reports).
    fn try_submit(
        &self,
        payload: &[u8],
        deadline: Instant,
        callback: Callback,
    ) -> Result<RequestHandle, Callback> {
        let serial = callback.serial();
        let start = |connection: &Arc<Connection>, callback| {
            let id = connection.start_submitted(payload, deadline, callback)?;
            Ok(RequestHandle {
                inner: HandleInner::Queued {
                    connection: connection.clone(),
                    id,
                    serial,
                },
            })
        };
        match self.offer(callback, start) {
            Offer::Taken(handle) => Ok(handle),
            Offer::NoRoom(callback) | Offer::Failed(_, callback) => Err(callback),
        }
    }

    /// Waits for registry changes (or freed capacity) until a connection takes the request.
    async fn wait_and_route(
        &self,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<PendingRequest, Error> {
        loop {
            let changed = self.group.changed();
            let room = self.capacity.notified();
            tokio::pin!(changed);
            tokio::pin!(room);
            // Registered before the retry, so a change between the retry and the await wakes us.
            changed.as_mut().enable();
            room.as_mut().enable();

            if let Some(pending) = self.try_route(payload, deadline)? {
                // Pass the wake-up on if room is left, so that one freed slot wakes one waiter.
                if self
                    .group
                    .load()
                    .iter()
                    .any(|entry| entry.value().has_capacity())
                {
                    self.capacity.notify_one();
                }
                return Ok(pending);
            }
            tokio::select! {
                _ = changed => {}
                _ = room => {}
            }
        }
    }

    fn close(&self) {
        if self.runtime.is_stale() {
            // In a forked child, the parent's threads may have held the connection locks at the
            // moment of the fork; touching them could deadlock. Mark the pool closed without
            // waking anything, and leave the copied state alone.
            self.shutdown.mark();
            return;
        }

        let first = !self.shutdown.is_triggered();
        self.shutdown.trigger();
        for slot in &self.slots {
            if let Some(connection) = slot.current() {
                connection.close(Error::PoolClosed);
            }
        }
        self.group.wake_waiters();
        if first {
            tracing::debug!(slots = self.slots.len(), "pool closed");
        }
    }

    fn stats(&self) -> Stats {
        // In a forked child the slot locks may be held by parent threads that no longer exist,
        // so the per-connection figures are not read there.
        let forked = self.runtime.is_stale();
        let connections: Vec<ConnectionStats> = self
            .slots
            .iter()
            .map(|slot| {
                let current = if forked { None } else { slot.current() };
                ConnectionStats {
                    address: slot.address.clone(),
                    state: if forked {
                        ConnectionState::Closed
                    } else {
                        slot.state()
                    },
                    in_flight: current.as_ref().map_or(0, |c| c.in_flight()),
                    completed: current.as_ref().map_or(0, |c| c.completed()),
                    last_error: if forked { None } else { slot.last_error() },
                }
            })
            .collect();

        Stats {
            configured: self.slots.len(),
            connected: if forked { 0 } else { self.group.len() },
            in_flight: connections.iter().map(|c| u64::from(c.in_flight)).sum(),
            completed: self.counters.completed(),
            errors: self.counters.errors(),
            reconnects: self.counters.reconnects(),
            late_responses: self.counters.late_responses(),
            connections,
        }
    }
}

/// The outcome of [`PoolShared::offer`].
enum Offer<T, C> {
    /// A connection took the request.
    Taken(T),
    /// No routable connection had room; `C` comes back to the caller.
    NoRoom(C),
    /// The request cannot be sent: the pool is closed, the payload is too large, or the
    /// strategy picked an index out of range.
    Failed(Error, C),
}

/// A request started with [`Pool::submit`].
#[derive(Debug)]
pub struct RequestHandle {
    inner: HandleInner,
}

#[derive(Debug)]
enum HandleInner {
    /// Waiting for a routable connection in a task.
    Task(tokio::task::AbortHandle),
    /// Queued on a connection, which runs the completion.
    Queued {
        connection: Arc<Connection>,
        id: u32,
        serial: u64,
    },
}

impl RequestHandle {
    /// Cancels the request. Its completion runs with [`Error::Cancelled`] unless it has already
    /// run, on the calling thread or a runtime thread. A response that arrives later is dropped
    /// and counted.
    pub fn cancel(&self) {
        match &self.inner {
            HandleInner::Task(abort) => abort.abort(),
            HandleInner::Queued {
                connection,
                id,
                serial,
            } => connection.cancel_submitted(*id, *serial),
        }
    }
}

/// The future returned by [`Pool::request`].
///
/// It can be awaited on any executor. The only timer it may arm, while waiting for a routable
/// connection, runs on the library's runtime.
#[must_use = "a request does nothing unless awaited"]
pub struct RequestFuture<'a> {
    inner: Pin<Box<dyn Future<Output = Result<Bytes, Error>> + Send + 'a>>,
}

impl Future for RequestFuture<'_> {
    type Output = Result<Bytes, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// A future that enters the library runtime on each poll, so that its timers work on any
/// executor.
#[must_use = "futures do nothing unless awaited"]
struct InRuntime<'a, T> {
    runtime: RuntimeHandle,
    inner: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
}

impl<T> Future for InRuntime<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let _entered = self.runtime.handle().enter();
        self.inner.as_mut().poll(cx)
    }
}
