//! `fanta.Pool`: the blocking pool, and the submit primitive that `fanta.AsyncPool` builds on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fanta_core::config::{
    DEFAULT_CONNECTIONS_PER_ADDRESS, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_TIMEOUT, MAX_CONNECTIONS_PER_ADDRESS,
};
use fanta_core::connection::MAX_SLOTS;
use fanta_core::{PoolConfig, Stats};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::args;
use crate::blocking::{wait_detached, Completion};
use crate::completion_queue::CompletionQueue;
use crate::errors::to_py_err;
use crate::logging;

/// Default `timeout` of `wait_connected`, in seconds: 5.
const WAIT_CONNECTED_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of multiplexed connections to one or more servers.
///
/// Many threads may share one Pool: each request blocks only its own thread, with the
/// interpreter released, and all requests share the pool's few connections. Opening returns
/// at once and connects in the background.
///
/// Arguments:
///     addresses: one "host:port" string or a list of them.
///     size: connections per address, 1 to 1024. Default 4.
///     strategy: "round_robin" (default) or "random".
///     timeout: default deadline of each request in seconds, more than 0. Default 10.0.
///     connect_timeout: bound on a TCP connect plus handshake in seconds. Default 5.0.
///     max_in_flight: cap on requests in flight per connection, 1 to 1048575. Default 1024.
///     wait_for_connection: whether a request waits, up to its deadline, for a connection
///         when none is routable (default), or raises NoConnectionError at once.
#[pyclass(frozen, module = "fanta._fanta")]
pub(crate) struct Pool {
    inner: fanta_core::Pool,
}

#[pymethods]
impl Pool {
    #[new]
    #[pyo3(
        text_signature = "(addresses, *, size=4, strategy='round_robin', timeout=10.0, \
        connect_timeout=5.0, max_in_flight=1024, wait_for_connection=True)"
    )]
    #[pyo3(signature = (
        addresses,
        *,
        size = None,
        strategy = "round_robin",
        timeout = None,
        connect_timeout = None,
        max_in_flight = None,
        wait_for_connection = true,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        addresses: &Bound<'_, PyAny>,
        size: Option<&Bound<'_, PyAny>>,
        strategy: &str,
        timeout: Option<&Bound<'_, PyAny>>,
        connect_timeout: Option<&Bound<'_, PyAny>>,
        max_in_flight: Option<&Bound<'_, PyAny>>,
        wait_for_connection: bool,
    ) -> PyResult<Pool> {
        let config = PoolConfig::new(args::addresses(addresses, "addresses")?)
            .connections_per_address(args::integer_or(
                size,
                DEFAULT_CONNECTIONS_PER_ADDRESS as u64,
                "size",
                1,
                MAX_CONNECTIONS_PER_ADDRESS as u64,
            )? as usize)
            .strategy(strategy)
            .timeout(args::optional_seconds(timeout, "timeout")?.unwrap_or(DEFAULT_TIMEOUT))
            .connect_timeout(
                args::optional_seconds(connect_timeout, "connect_timeout")?
                    .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            )
            .max_in_flight(args::integer_or(
                max_in_flight,
                u64::from(DEFAULT_MAX_IN_FLIGHT),
                "max_in_flight",
                1,
                u64::from(MAX_SLOTS),
            )? as u32)
            .wait_for_connection(wait_for_connection);

        logging::start_forwarding(py);
        let inner = fanta_core::Pool::open(config).map_err(to_py_err)?;
        Ok(Pool { inner })
    }

    /// Send `payload` and return the response payload, blocking this thread only.
    ///
    /// `payload` is any bytes-like object. `timeout` (seconds) overrides the pool's default
    /// deadline. Ctrl-C interrupts the wait within about 50 ms and abandons the request.
    #[pyo3(signature = (payload, *, timeout = None))]
    fn request<'py>(
        &self,
        py: Python<'py>,
        payload: &Bound<'py, PyAny>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let payload = args::payload(payload, "payload")?;
        let timeout = args::optional_seconds(timeout, "timeout")?;

        let completion = Arc::new(Completion::new());
        let completer = completion.clone();
        let handle = self
            .inner
            .submit(payload, timeout, move |result| completer.complete(result))
            .map_err(to_py_err)?;

        let response = wait_detached(
            py,
            |limit| completion.wait_timeout(limit),
            || handle.cancel(),
        )?;
        Ok(PyBytes::new(py, &response))
    }

    /// Start a request whose result is pushed to `queue` under `request_id`.
    ///
    /// This is the primitive under AsyncPool.request; it returns at once.
    #[pyo3(signature = (queue, request_id, payload, *, timeout = None))]
    fn _submit_to(
        &self,
        queue: &CompletionQueue,
        request_id: u64,
        payload: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<RequestHandle> {
        let payload = args::payload(payload, "payload")?;
        let timeout = args::optional_seconds(timeout, "timeout")?;
        let sink = queue.sink();
        let handle = self
            .inner
            .submit(payload, timeout, move |result| {
                sink.push(request_id, result)
            })
            .map_err(to_py_err)?;
        Ok(RequestHandle { inner: handle })
    }

    /// Wait until `count` connections (default: all configured) are connected, or `timeout`
    /// seconds pass. Return whether they are.
    #[pyo3(signature = (count = None, *, timeout = None))]
    fn wait_connected(
        &self,
        py: Python<'_>,
        count: Option<usize>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let configured = self.inner.stats().configured;
        let count = count.unwrap_or(configured);
        check_reachable(count, configured)?;
        let timeout = args::optional_seconds(timeout, "timeout")?.unwrap_or(WAIT_CONNECTED_TIMEOUT);
        let deadline = Instant::now() + timeout;

        wait_detached(
            py,
            |limit| {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.inner.wait_connected_blocking(count, limit.min(left)) {
                    Ok(true) => Some(Ok(true)),
                    Ok(false) if left <= limit => Some(Ok(false)),
                    Ok(false) => None,
                    Err(error) => Some(Err(error)),
                }
            },
            || {},
        )
    }

    /// Return a snapshot of the pool's counters and connections as a dict.
    ///
    /// Keys: configured, connected, in_flight, requests (completed plus errors), completed,
    /// errors, errors_by_kind, reconnects, late_responses, and connections: a list of dicts
    /// with address, state ("connecting", "connected", "draining", "backoff" or "closed"),
    /// in_flight, completed and last_error (the most recent connect failure or disconnect
    /// cause as a string, or None).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.inner.stats())
    }

    /// Close the pool: stop reconnecting, close every connection and fail every request in
    /// flight with PoolClosedError. Idempotent; does not block.
    fn close(&self) {
        self.inner.close();
    }

    /// Whether close() was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The configured "host:port" addresses.
    #[getter]
    fn addresses(&self) -> Vec<String> {
        self.inner.config().addresses().to_vec()
    }

    /// The default per-request deadline, in seconds.
    #[getter]
    fn timeout(&self) -> f64 {
        self.inner.config().default_timeout().as_secs_f64()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.inner.close();
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<fanta.Pool addresses={:?} connected={} closed={}>",
            self.inner.config().addresses(),
            self.inner.connected(),
            self.inner.is_closed()
        )
    }
}

/// A request started with Pool._submit_to.
#[pyclass(frozen, module = "fanta._fanta")]
pub(crate) struct RequestHandle {
    inner: fanta_core::RequestHandle,
}

#[pymethods]
impl RequestHandle {
    /// Cancel the request; a response that arrives later is dropped.
    fn cancel(&self) {
        self.inner.cancel();
    }
}

/// Converts a core stats snapshot into the dict that Pool.stats() documents.
fn stats_dict<'py>(py: Python<'py>, stats: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let errors_by_kind = PyDict::new(py);
    for (kind, count) in stats.errors.iter() {
        errors_by_kind.set_item(kind.name(), count)?;
    }

    let connections = PyList::empty(py);
    for connection in &stats.connections {
        let entry = PyDict::new(py);
        entry.set_item("address", &connection.address)?;
        entry.set_item("state", connection.state.name())?;
        entry.set_item("in_flight", connection.in_flight)?;
        entry.set_item("completed", connection.completed)?;
        entry.set_item("last_error", connection.last_error.as_deref())?;
        connections.append(entry)?;
    }

    let dict = PyDict::new(py);
    dict.set_item("configured", stats.configured)?;
    dict.set_item("connected", stats.connected)?;
    dict.set_item("in_flight", stats.in_flight)?;
    dict.set_item("requests", stats.completed + stats.errors.total())?;
    dict.set_item("completed", stats.completed)?;
    dict.set_item("errors", stats.errors.total())?;
    dict.set_item("errors_by_kind", errors_by_kind)?;
    dict.set_item("reconnects", stats.reconnects)?;
    dict.set_item("late_responses", stats.late_responses)?;
    dict.set_item("connections", connections)?;
    Ok(dict)
}

/// Rejects a connection count that the pool can never reach.
fn check_reachable(count: usize, configured: usize) -> PyResult<()> {
    if count > configured {
        return Err(PyValueError::new_err(format!(
            "count: expected at most the {configured} configured connections, got {count}"
        )));
    }
    Ok(())
}
