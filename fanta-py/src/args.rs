//! Conversion and validation of Python arguments; each error names its argument.

use std::time::Duration;

use bytes::Bytes;
use fanta_core::config::MAX_TIMEOUT;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

/// Copies a bytes-like object (bytes, bytearray, memoryview or any object exporting a byte
/// buffer) into a payload.
pub(crate) fn payload(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Bytes> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(Bytes::copy_from_slice(bytes.as_bytes()));
    }
    if value.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{name}: expected a bytes-like object, got str; encode it first, e.g. text.encode()"
        )));
    }
    match PyBuffer::<u8>::get(value) {
        Ok(buffer) => Ok(Bytes::from(buffer.to_vec(value.py())?)),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{name}: expected a bytes-like object (bytes, bytearray, memoryview), got {}",
            type_name(value)
        ))),
    }
}

/// Extracts a number of seconds (an int or a float); anything else is a `TypeError` naming
/// `name`.
fn number(value: &Bound<'_, PyAny>, name: &str) -> PyResult<f64> {
    value.extract::<f64>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name}: expected a number of seconds, got {}",
            type_name(value)
        ))
    })
}

/// Converts seconds to a deadline length, accepting more than 0 and at most one year.
pub(crate) fn seconds(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Duration> {
    let value = number(value, name)?;
    let max = MAX_TIMEOUT.as_secs_f64();
    if !(value > 0.0 && value <= max) {
        return Err(PyValueError::new_err(format!(
            "{name}: expected seconds more than 0 and at most {max}, got {value}"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

/// Like [`seconds`], with `None` passed through.
pub(crate) fn optional_seconds(
    value: Option<&Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<Option<Duration>> {
    match value {
        Some(value) if !value.is_none() => seconds(value, name).map(Some),
        _ => Ok(None),
    }
}

/// Converts a non-negative seconds value that may be zero, such as a server delay.
pub(crate) fn non_negative_seconds(value: f64, name: &str) -> PyResult<Duration> {
    let max = MAX_TIMEOUT.as_secs_f64();
    if !(value >= 0.0 && value <= max) {
        return Err(PyValueError::new_err(format!(
            "{name}: expected seconds from 0 to {max}, got {value}"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

/// Extracts an integer in `min..=max`; a non-integer is a `TypeError`, a value out of range
/// (however large) a `ValueError`.
pub(crate) fn integer(value: &Bound<'_, PyAny>, name: &str, min: u64, max: u64) -> PyResult<u64> {
    let out_of_range = || {
        PyValueError::new_err(format!(
            "{name}: expected an integer from {min} to {max}, got {value}"
        ))
    };
    if value.is_instance_of::<pyo3::types::PyBool>()
        || !value.is_instance_of::<pyo3::types::PyInt>()
    {
        return Err(PyTypeError::new_err(format!(
            "{name}: expected an integer, got {}",
            type_name(value)
        )));
    }
    match value.extract::<i128>() {
        Ok(number) if number >= i128::from(min) && number <= i128::from(max) => Ok(number as u64),
        _ => Err(out_of_range()),
    }
}

/// Like [`integer`], with `default` for an omitted argument.
pub(crate) fn integer_or(
    value: Option<&Bound<'_, PyAny>>,
    default: u64,
    name: &str,
    min: u64,
    max: u64,
) -> PyResult<u64> {
    value.map_or(Ok(default), |value| integer(value, name, min, max))
}

/// Accepts one `"host:port"` string or a list or tuple of them. The core checks their shape.
pub(crate) fn addresses(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<String>> {
    if let Ok(address) = value.cast::<PyString>() {
        return Ok(vec![address.to_str()?.to_owned()]);
    }
    if !(value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>()) {
        return Err(PyTypeError::new_err(format!(
            "{name}: expected a \"host:port\" string or a list of them, got {}",
            type_name(value)
        )));
    }

    let mut addresses = Vec::new();
    for item in value.try_iter()? {
        let item = item?;
        match item.cast::<PyString>() {
            Ok(address) => addresses.push(address.to_str()?.to_owned()),
            Err(_) => {
                return Err(PyTypeError::new_err(format!(
                    "{name}: expected every item to be a \"host:port\" string, got {}",
                    type_name(&item)
                )))
            }
        }
    }
    Ok(addresses)
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "an unknown type".to_owned())
}
