//! The wrapper every C export runs in, the argument checks, and the per-thread last error.
//!
//! [`guard`] runs the body of an export under `catch_unwind`, so that no panic unwinds into C,
//! and turns a [`Failure`] or a panic into a status code. On failure it stores the message in a
//! thread-local string that `fanta_last_error_message()` returns, so two threads that fail at
//! the same time each read their own message. The pointer helpers below turn a NULL or
//! otherwise unusable argument into `FANTA_STATUS_INVALID_ARGUMENT` with a message that names
//! the argument.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::status::FantaStatus;

/// Why an export failed: the status it returns and the message stored for the caller.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: FantaStatus,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: FantaStatus, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(FantaStatus::InvalidArgument, message)
    }
}

impl From<fanta_core::Error> for Failure {
    fn from(error: fanta_core::Error) -> Failure {
        Failure::new(error.kind().into(), error.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Runs `body` as the export `function`: catches panics, records failures, returns the status.
pub(crate) fn guard<F>(function: &str, body: F) -> FantaStatus
where
    F: FnOnce() -> Result<(), Failure>,
{
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            clear_last_error();
            FantaStatus::Ok
        }
        Ok(Err(failure)) => {
            set_last_error(&format!("{function}: {}", failure.message));
            failure.status
        }
        Err(panic) => {
            set_last_error(&format!(
                "{function}: internal error (panic: {})",
                panic_message(&*panic)
            ));
            FantaStatus::Panic
        }
    }
}

/// Like [`guard`], for exports that return a value instead of a status (accessors and `_free`
/// functions): a failure or a panic returns `fallback` and records the message.
pub(crate) fn guard_value<T, F>(function: &str, fallback: T, body: F) -> T
where
    F: FnOnce() -> Result<T, Failure>,
{
    let mut value = None;
    let status = guard(function, || {
        value = Some(body()?);
        Ok(())
    });
    match (status, value) {
        (FantaStatus::Ok, Some(value)) => value,
        _ => fallback,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(message) = panic.downcast_ref::<&str>() {
        message
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message
    } else {
        "no message"
    }
}

fn set_last_error(message: &str) {
    let message = c_string_lossy(message);
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

fn clear_last_error() {
    LAST_ERROR.with(|last| {
        if !last.borrow().is_empty() {
            *last.borrow_mut() = CString::default();
        }
    });
}

/// Converts `text` to a C string, replacing interior NUL bytes (a server's error text may
/// contain them) with U+FFFD so that the message is never cut short.
pub(crate) fn c_string_lossy(text: &str) -> CString {
    match CString::new(text) {
        Ok(converted) => converted,
        Err(_) => {
            let cleaned = text.replace('\0', "\u{FFFD}");
            CString::new(cleaned).unwrap_or_default()
        }
    }
}

/// Returns the message of the last call on this thread that returned a status other than
/// `FANTA_STATUS_OK`, or an empty string if the last call succeeded.
///
/// The message starts with the name of the function that failed, for example
/// `"fanta_pool_open: invalid argument: connections_per_address: expected 1 to 1024, got 0"`.
///
/// Ownership: the string belongs to the calling thread's libfanta state. It stays valid until
/// the next libfanta call on the same thread, other than this one and `fanta_status_name()`;
/// copy it to keep it longer. Do not free it. It is never NULL.
/// Thread-safety: each thread has its own last error, so threads never read each other's.
/// In a completion callback, read the message passed to the callback instead.
#[no_mangle]
pub extern "C" fn fanta_last_error_message() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// Borrows the object behind `pointer`, or fails if it is NULL.
///
/// # Safety
///
/// A non-NULL `pointer` must point to a live `T` for `'a`, as every handle does between its
/// constructor and its `_free` function.
pub(crate) unsafe fn borrow<'a, T>(pointer: *const T, argument: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller guarantees that a non-NULL pointer is live for 'a.
    unsafe { pointer.as_ref() }.ok_or_else(|| Failure::invalid(format!("{argument} is NULL")))
}

/// Borrows the object behind `pointer` mutably, or fails if it is NULL.
///
/// # Safety
///
/// As [`borrow`], and no other reference to the object may exist for `'a`.
pub(crate) unsafe fn borrow_mut<'a, T>(
    pointer: *mut T,
    argument: &str,
) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller guarantees that a non-NULL pointer is live and unaliased for 'a.
    unsafe { pointer.as_mut() }.ok_or_else(|| Failure::invalid(format!("{argument} is NULL")))
}

/// Borrows `length` bytes at `pointer`. NULL is accepted for an empty buffer.
///
/// # Safety
///
/// A non-NULL `pointer` must point to `length` readable bytes that stay unchanged for `'a`.
pub(crate) unsafe fn bytes<'a>(
    pointer: *const u8,
    length: usize,
    argument: &str,
) -> Result<&'a [u8], Failure> {
    if length == 0 {
        return Ok(&[]);
    }
    if pointer.is_null() {
        return Err(Failure::invalid(format!(
            "{argument} is NULL but its length is {length}"
        )));
    }
    if length > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{argument}: length {length} exceeds the largest object size"
        )));
    }
    // SAFETY: non-NULL, at most isize::MAX bytes, and the caller guarantees they are readable.
    Ok(unsafe { std::slice::from_raw_parts(pointer, length) })
}

/// Borrows a NUL-terminated UTF-8 string.
///
/// # Safety
///
/// A non-NULL `pointer` must point to a NUL-terminated string that stays unchanged for `'a`.
pub(crate) unsafe fn utf8<'a>(pointer: *const c_char, argument: &str) -> Result<&'a str, Failure> {
    if pointer.is_null() {
        return Err(Failure::invalid(format!("{argument} is NULL")));
    }
    // SAFETY: non-NULL, and the caller guarantees NUL termination and lifetime.
    let text = unsafe { CStr::from_ptr(pointer) };
    text.to_str()
        .map_err(|_| Failure::invalid(format!("{argument} is not valid UTF-8")))
}

/// Rejects a NULL output pointer. Exports call this before the work whose result it receives.
pub(crate) fn out<T>(pointer: *mut T, argument: &str) -> Result<*mut T, Failure> {
    if pointer.is_null() {
        return Err(Failure::invalid(format!("{argument} is NULL")));
    }
    Ok(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        // SAFETY: fanta_last_error_message returns a live NUL-terminated string.
        unsafe { CStr::from_ptr(fanta_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn panic_becomes_panic_status_with_message() {
        let status = guard("fanta_test", || panic!("boom"));

        assert_eq!(status, FantaStatus::Panic);
        assert_eq!(last_error(), "fanta_test: internal error (panic: boom)");
    }

    #[test]
    fn failure_sets_message_and_success_clears_it() {
        let status = guard("fanta_test", || Err(Failure::invalid("pool is NULL")));
        assert_eq!(status, FantaStatus::InvalidArgument);
        assert_eq!(last_error(), "fanta_test: pool is NULL");

        assert_eq!(guard("fanta_test", || Ok(())), FantaStatus::Ok);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn last_error_is_per_thread() {
        guard("fanta_main", || Err(Failure::invalid("main")));
        std::thread::spawn(|| {
            guard("fanta_other", || Err(Failure::invalid("other")));
            assert_eq!(last_error(), "fanta_other: other");
        })
        .join()
        .unwrap();
        assert_eq!(last_error(), "fanta_main: main");
    }

    #[test]
    fn interior_nul_is_replaced_not_truncated() {
        let converted = c_string_lossy("a\0b");
        assert_eq!(converted.to_str().unwrap(), "a\u{FFFD}b");
    }
}
