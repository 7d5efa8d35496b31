//! The mapping from the core's [`Error`] to the exception classes of `fanta._errors`.
//!
//! The classes are defined in Python, because `fanta.TimeoutError` must also derive from the
//! builtin `TimeoutError`, and `DisconnectedError` and `NoConnectionError` from
//! `ConnectionError`, which needs multiple inheritance.

use fanta_core::Error;
use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

pyo3::import_exception!(fanta._errors, FantaError);
pyo3::import_exception!(fanta._errors, TimeoutError);
pyo3::import_exception!(fanta._errors, DisconnectedError);
pyo3::import_exception!(fanta._errors, NoConnectionError);
pyo3::import_exception!(fanta._errors, ServerError);
pyo3::import_exception!(fanta._errors, ProtocolError);
pyo3::import_exception!(fanta._errors, PoolClosedError);
pyo3::import_exception!(fanta._errors, ForkedError);

/// Converts a core error into the Python exception documented for its kind.
///
/// `Cancelled` and `BlockingInRuntime` raise the base `FantaError`. Neither reaches a caller in
/// normal use, because the module cancels only requests whose caller is gone (interrupted, or a
/// cancelled task), and it never calls a blocking core function from a runtime thread.
pub(crate) fn to_py_err(error: Error) -> PyErr {
    let message = error.to_string();
    match error {
        Error::Timeout => TimeoutError::new_err(message),
        Error::Disconnected(_) => DisconnectedError::new_err(message),
        Error::NoConnection => NoConnectionError::new_err(message),
        Error::Server(server_message) => ServerError::new_err(server_message),
        Error::Protocol(_) => ProtocolError::new_err(message),
        Error::PoolClosed => PoolClosedError::new_err(message),
        Error::Forked => ForkedError::new_err(message),
        Error::InvalidArgument(argument_message) => PyValueError::new_err(argument_message),
        Error::BlockingInRuntime | Error::Cancelled => FantaError::new_err(message),
    }
}
