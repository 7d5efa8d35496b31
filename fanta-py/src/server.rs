//! `fanta.Server`: the core's reference server, embedded and running on the library runtime.

use std::time::Duration;

use fanta_core::ServerConfig;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::args;
use crate::blocking::wait_detached;
use crate::logging;

/// The reference server, listening on a free loopback port by default.
///
/// It echoes each payload, answers b"PING" with b"PONG", and can delay, withhold or fail
/// answers, for tests and examples. It runs on the library's threads until shutdown().
///
/// Arguments:
///     host, port: the address to bind. Default 127.0.0.1 and 0, a free port.
///     delay: (min, max) seconds; each response is delayed by a random time in that range,
///         so responses leave out of order. Default None.
///     silent: never respond to requests. Default False.
///     fail_prefix: bytes; a request starting with it gets an error whose message is the
///         rest of its payload (raised as ServerError). Default None.
///     max_in_flight: requests accepted in flight per connection, 0 for no limit (default).
#[pyclass(frozen, module = "fanta._fanta")]
pub(crate) struct Server {
    inner: fanta_core::Server,
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(
        text_signature = "(*, host='127.0.0.1', port=0, delay=None, silent=False, \
        fail_prefix=None, max_in_flight=0)"
    )]
    #[pyo3(signature = (
        *,
        host = "127.0.0.1",
        port = None,
        delay = None,
        silent = false,
        fail_prefix = None,
        max_in_flight = None,
    ))]
    fn new(
        py: Python<'_>,
        host: &str,
        port: Option<&Bound<'_, PyAny>>,
        delay: Option<(f64, f64)>,
        silent: bool,
        fail_prefix: Option<&Bound<'_, PyAny>>,
        max_in_flight: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Server> {
        let port = args::integer_or(port, 0, "port", 0, 65535)?;
        let listen = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let config = ServerConfig {
            listen,
            delay: delay.map(delay_range).transpose()?,
            max_in_flight: args::integer_or(
                max_in_flight,
                0,
                "max_in_flight",
                0,
                u64::from(u32::MAX),
            )? as u32,
            silent,
            fail_prefix: fail_prefix
                .map(|prefix| args::payload(prefix, "fail_prefix"))
                .transpose()?,
            ..ServerConfig::loopback()
        };

        logging::start_forwarding(py);
        let mut config = Some(config);
        let started = wait_detached(
            py,
            |_| {
                config
                    .take()
                    .map(|config| Ok(fanta_core::Server::start(config)))
            },
            || {},
        )?;
        match started {
            Ok(inner) => Ok(Server { inner }),
            Err(error) => Err(PyOSError::new_err(format!(
                "failed to start the server: {error}"
            ))),
        }
    }

    /// The bound address as "host:port", to pass to Pool.
    #[getter]
    fn address(&self) -> String {
        self.inner.local_addr().to_string()
    }

    /// The bound port.
    #[getter]
    fn port(&self) -> u16 {
        self.inner.local_addr().port()
    }

    /// Requests received so far over all connections.
    #[getter]
    fn requests_received(&self) -> u64 {
        self.inner.requests_received()
    }

    /// Close every client connection at once, dropping the requests in flight. The server
    /// keeps accepting new connections.
    fn drop_connections(&self) {
        self.inner.drop_all_connections();
    }

    /// Stop accepting and close every connection. Idempotent.
    fn shutdown(&self) {
        self.inner.shutdown();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.inner.shutdown();
        false
    }

    fn __repr__(&self) -> String {
        format!("<fanta.Server address={}>", self.inner.local_addr())
    }
}

/// Converts a `(min, max)` delay in seconds into the server's range.
fn delay_range((min, max): (f64, f64)) -> PyResult<(Duration, Duration)> {
    let min = args::non_negative_seconds(min, "delay")?;
    let max = args::non_negative_seconds(max, "delay")?;
    if min > max {
        return Err(PyValueError::new_err(format!(
            "delay: expected (min, max) with min <= max, got ({}, {})",
            min.as_secs_f64(),
            max.as_secs_f64()
        )));
    }
    Ok((min, max))
}
