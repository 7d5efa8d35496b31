//! The one place where the module blocks a Python thread.
//!
//! Every blocking call goes through [`wait_detached`]: it detaches from the interpreter (so
//! other Python threads run), waits in slices of [`SIGNAL_CHECK_INTERVAL`], and re-attaches
//! between slices to run signal handlers. A handler that raises (Ctrl-C raises
//! `KeyboardInterrupt` in the main thread) ends the wait and cancels the operation, so that the
//! pool is left healthy.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use fanta_core::Error;
use pyo3::prelude::*;

use crate::errors::to_py_err;

/// Maximum time a blocked thread stays detached before it checks for signals: half of the
/// 100 ms within which Ctrl-C must interrupt a blocking call.
pub(crate) const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Blocks until `poll` returns a result, releasing the interpreter meanwhile.
///
/// `poll` is called detached with the longest time it may wait, and returns `None` to be
/// called again. Between calls, pending signal handlers run; if one raises, `on_interrupt`
/// runs and the handler's exception is returned. A core error becomes its Python exception.
pub(crate) fn wait_detached<T, P, I>(py: Python<'_>, mut poll: P, on_interrupt: I) -> PyResult<T>
where
    T: Send,
    P: FnMut(Duration) -> Option<Result<T, Error>> + Send,
    I: FnOnce(),
{
    loop {
        if let Some(outcome) = py.detach(|| poll(SIGNAL_CHECK_INTERVAL)) {
            return outcome.map_err(to_py_err);
        }
        if let Err(interrupt) = py.check_signals() {
            on_interrupt();
            return Err(interrupt);
        }
    }
}

/// A one-shot slot that a runtime thread fills and a Python thread waits on.
pub(crate) struct Completion<T> {
    value: Mutex<Option<T>>,
    ready: Condvar,
}

impl<T> Completion<T> {
    pub(crate) fn new() -> Completion<T> {
        Completion {
            value: Mutex::new(None),
            ready: Condvar::new(),
        }
    }

    /// Stores the value and wakes the waiter, after releasing the lock.
    pub(crate) fn complete(&self, value: T) {
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
        self.ready.notify_one();
    }

    /// Waits up to `limit` for the value and takes it, or returns `None` if it is not there yet.
    pub(crate) fn wait_timeout(&self, limit: Duration) -> Option<T> {
        let guard = self.value.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = self
            .ready
            .wait_timeout_while(guard, limit, |value| value.is_none())
            .unwrap_or_else(|p| p.into_inner());
        guard.take()
    }
}
