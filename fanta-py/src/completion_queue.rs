//! `CompletionQueue`: how request results reach an asyncio event loop.
//!
//! Runtime threads push `(request id, result)` pairs into a vector and never touch the
//! interpreter. The loop watches the read end of a socket pair with `loop.add_reader`. The first
//! push after a drain writes one byte to the other end, and later pushes only append. So under
//! load one loop wake-up collects many completions, and a push never waits for the GIL.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fanta_core::Error;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::errors::to_py_err;

/// A queue of finished requests that an event loop drains when its file descriptor is readable.
#[pyclass(frozen, module = "fanta._fanta")]
pub(crate) struct CompletionQueue {
    sink: Arc<Sink>,
    /// Drains that found at least one completion: the loop wake-ups that did work.
    wakeups: AtomicU64,
    /// Completions handed to the loop.
    delivered: AtomicU64,
}

/// The half of the queue that runtime threads push into. Completion callbacks own a clone, so
/// the sink and its sockets live until the last request that may push has completed.
pub(crate) struct Sink {
    state: Mutex<SinkState>,
    reader: UnixStream,
    writer: UnixStream,
}

#[derive(Default)]
struct SinkState {
    completed: Vec<(u64, Result<Bytes, Error>)>,
    /// Whether a wake-up byte was written since the last drain. Only the push that sets it
    /// writes, so a burst of completions costs one byte and one loop wake-up.
    wake_pending: bool,
}

impl Sink {
    /// Queues a result and wakes the loop if no wake-up is pending. Called on runtime threads.
    pub(crate) fn push(&self, request_id: u64, result: Result<Bytes, Error>) {
        let wake = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.completed.push((request_id, result));
            !std::mem::replace(&mut state.wake_pending, true)
        };
        if wake {
            // A full socket buffer (WouldBlock) already contains unread bytes, so the loop wakes
            // anyway. Any other error means the loop side is gone.
            let _ = (&self.writer).write(&[1]);
        }
    }
}

#[pymethods]
impl CompletionQueue {
    #[new]
    fn new() -> PyResult<CompletionQueue> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(CompletionQueue {
            sink: Arc::new(Sink {
                state: Mutex::new(SinkState::default()),
                reader,
                writer,
            }),
            wakeups: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        })
    }

    /// The file descriptor that becomes readable when completions are queued.
    fn fileno(&self) -> i32 {
        self.sink.reader.as_raw_fd()
    }

    /// Take every queued completion as a list of (request_id, bytes or exception) tuples.
    ///
    /// Results of cancelled requests are left out.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        // Reading the wake-up bytes before taking the vector means a push that lands after the
        // read writes a fresh byte, so no completion waits without a wake-up.
        self.discard_wakeup_bytes()?;
        let completed = {
            let mut state = self.sink.state.lock().unwrap_or_else(|p| p.into_inner());
            state.wake_pending = false;
            std::mem::take(&mut state.completed)
        };

        if !completed.is_empty() {
            self.wakeups.fetch_add(1, Ordering::Relaxed);
            self.delivered
                .fetch_add(completed.len() as u64, Ordering::Relaxed);
        }

        let list = PyList::empty(py);
        for (request_id, result) in completed {
            let value: Bound<'py, PyAny> = match result {
                Ok(response) => PyBytes::new(py, &response).into_any(),
                Err(Error::Cancelled) => continue,
                Err(error) => to_py_err(error).into_value(py).into_bound(py).into_any(),
            };
            list.append(PyTuple::new(
                py,
                [request_id.into_pyobject(py)?.into_any(), value],
            )?)?;
        }
        Ok(list)
    }

    /// Drains that delivered at least one completion.
    #[getter]
    fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Completions delivered by drain().
    #[getter]
    fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
}

impl CompletionQueue {
    pub(crate) fn sink(&self) -> Arc<Sink> {
        self.sink.clone()
    }

    fn discard_wakeup_bytes(&self) -> PyResult<()> {
        let mut buffer = [0u8; 256];
        loop {
            match (&self.sink.reader).read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }
}
