//! Forwarding of the core's `tracing` events to Python's `logging`, under the logger `fanta`.
//!
//! The core emits events on its runtime threads, sometimes while it holds a connection lock.
//! Calling into Python there could deadlock: a Python thread holding the GIL may be waiting
//! for that same lock. So [`ForwardLayer`] only formats an event and queues it, and one
//! forwarder thread, which holds no core lock, attaches to the interpreter and passes the
//! queued records to `logging.getLogger("fanta").log`.
//!
//! # Cost
//!
//! The layer drops an event below the logger's effective level before formatting it, at the
//! cost of one atomic load. That level is read from Python when a pool or server opens and by
//! the forwarder thread every [`LEVEL_REFRESH`], so a level change made later takes effect
//! within that interval. At most [`MAX_QUEUED`] records wait; more are counted and reported.
//!
//! # Exit and fork
//!
//! `fanta/__init__.py` registers `_stop_log_forwarding` with `atexit`: it stops the layer and
//! lets the forwarder flush and exit before the interpreter finalizes, so no thread attaches
//! during finalization. It also registers `_reset_after_fork` with `os.register_at_fork`: a
//! forked child has no forwarder thread, and its copy of the queue lock may be held by a
//! parent thread that does not exist there, so the child starts from a fresh forwarder.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Name of the Python logger that receives the core's events.
const LOGGER_NAME: &str = "fanta";

/// How often the forwarder thread re-reads the logger's effective level.
const LEVEL_REFRESH: Duration = Duration::from_secs(1);

/// Records that may wait for the forwarder; beyond this, records are dropped and counted.
const MAX_QUEUED: usize = 10_000;

/// How long interpreter exit waits for the forwarder to flush.
const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Python's numeric level for `tracing`'s TRACE, which `logging` has no name for.
const PYTHON_TRACE: u8 = 5;

/// A level above every Python level: nothing is forwarded.
const FORWARDING_OFF: u8 = u8::MAX;

/// The effective level of the `fanta` logger, as last read; WARNING until then.
static MIN_LEVEL: AtomicU8 = AtomicU8::new(30);

static FORWARDER: std::sync::LazyLock<ArcSwap<Forwarder>> =
    std::sync::LazyLock::new(|| ArcSwap::from_pointee(Forwarder::default()));

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// One formatted event waiting to be passed to Python.
struct Record {
    level: u8,
    target: &'static str,
    message: String,
}

/// The record queue and the state of the forwarder thread that empties it.
#[derive(Default)]
struct Forwarder {
    queue: Mutex<Queue>,
    changed: Condvar,
    started: AtomicBool,
}

#[derive(Default)]
struct Queue {
    records: VecDeque<Record>,
    dropped: u64,
    stopping: bool,
    stopped: bool,
}

impl Forwarder {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, record: Record) {
        {
            let mut queue = self.lock();
            if queue.stopping {
                return;
            }
            if queue.records.len() >= MAX_QUEUED {
                queue.dropped += 1;
                return;
            }
            queue.records.push_back(record);
        }
        self.changed.notify_one();
    }

    /// Runs on the forwarder thread until stopped or until the interpreter is finalizing.
    fn run(&self) {
        loop {
            let (records, dropped, stopping) = {
                let queue = self.lock();
                let (mut queue, _) = self
                    .changed
                    .wait_timeout_while(queue, LEVEL_REFRESH, |queue| {
                        queue.records.is_empty() && !queue.stopping
                    })
                    .unwrap_or_else(|p| p.into_inner());
                let records = std::mem::take(&mut queue.records);
                let dropped = std::mem::take(&mut queue.dropped);
                (records, dropped, queue.stopping)
            };

            let attached = Python::try_attach(|py| {
                if !stopping {
                    refresh_level(py);
                }
                emit(py, records, dropped);
            });
            if attached.is_none() || stopping {
                break;
            }
        }

        self.lock().stopped = true;
        self.changed.notify_all();
    }
}

/// Installs the forwarding layer as this module's global `tracing` subscriber.
pub(crate) fn install() {
    let subscriber = tracing_subscriber::registry().with(ForwardLayer);
    // Fails only if this module's copy of `tracing` already has a global subscriber, which is
    // then this same layer, so the error changes nothing.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Reads the logger's level and starts the forwarder thread if it is not running.
pub(crate) fn start_forwarding(py: Python<'_>) {
    refresh_level(py);

    let forwarder = FORWARDER.load_full();
    if forwarder.started.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("fanta-log-forwarder".into())
        .spawn(move || forwarder.run());
    if let Err(error) = spawned {
        eprintln!(
            "fanta: failed to start the log forwarder thread, logs are not forwarded: {error}"
        );
    }
}

/// Stop forwarding log events and wait briefly for queued ones to reach `logging`.
///
/// Registered with atexit by the fanta package.
#[pyfunction(name = "_stop_log_forwarding")]
pub(crate) fn stop_log_forwarding(py: Python<'_>) {
    MIN_LEVEL.store(FORWARDING_OFF, Ordering::SeqCst);

    let forwarder = FORWARDER.load_full();
    forwarder.lock().stopping = true;
    forwarder.changed.notify_all();
    if !forwarder.started.load(Ordering::Acquire) {
        return;
    }

    // Detached, because the forwarder needs the interpreter to flush.
    py.detach(|| {
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut queue = forwarder.lock();
        while !queue.stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            queue = forwarder
                .changed
                .wait_timeout(queue, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    });
}

/// Replace the log forwarder in a forked child, which has no forwarder thread.
///
/// Registered with os.register_at_fork(after_in_child=...) by the fanta package.
#[pyfunction(name = "_reset_after_fork")]
pub(crate) fn reset_after_fork(py: Python<'_>) {
    FORWARDER.store(Arc::new(Forwarder::default()));
    refresh_level(py);
}

fn refresh_level(py: Python<'_>) {
    if MIN_LEVEL.load(Ordering::SeqCst) == FORWARDING_OFF {
        return;
    }
    let level = logger(py)
        .and_then(|logger| logger.call_method0("getEffectiveLevel"))
        .and_then(|level| level.extract::<i64>());
    if let Ok(level) = level {
        MIN_LEVEL.store(
            level.clamp(0, i64::from(FORWARDING_OFF - 1)) as u8,
            Ordering::SeqCst,
        );
    }
}

fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    LOGGER
        .get_or_try_init(py, || {
            let logging = py.import("logging")?;
            Ok::<_, PyErr>(logging.call_method1("getLogger", (LOGGER_NAME,))?.unbind())
        })
        .map(|logger| logger.bind(py))
}

/// Passes records to the logger. An exception raised by it is reported as unraisable, because
/// there is no caller to raise it to.
fn emit(py: Python<'_>, records: VecDeque<Record>, dropped: u64) {
    if records.is_empty() && dropped == 0 {
        return;
    }
    let result = (|| -> PyResult<()> {
        let logger = logger(py)?;
        for record in records {
            let extra = PyDict::new(py);
            extra.set_item("fanta_target", record.target)?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("extra", extra)?;
            logger.call_method("log", (record.level, record.message), Some(&kwargs))?;
        }
        if dropped > 0 {
            logger.call_method1(
                "warning",
                (format!(
                    "dropped {dropped} log records because the forwarding queue was full"
                ),),
            )?;
        }
        Ok(())
    })();
    if let Err(error) = result {
        error.write_unraisable(py, None);
    }
}

fn python_level(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => PYTHON_TRACE,
    }
}

/// The `tracing` layer that queues events for the forwarder thread.
struct ForwardLayer;

impl<S: Subscriber> Layer<S> for ForwardLayer {
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> Interest {
        // The Python level can change at any time, so tracing must not cache this callsite's
        // interest.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _context: Context<'_, S>) -> bool {
        python_level(metadata.level()) >= MIN_LEVEL.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let mut message = MessageVisitor::default();
        event.record(&mut message);
        FORWARDER.load().push(Record {
            level: python_level(event.metadata().level()),
            target: event.metadata().target(),
            message: message.finish(),
        });
    }
}

/// Formats an event as its message followed by ` key=value` for each field.
#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn finish(mut self) -> String {
        self.message.push_str(&self.fields);
        self.message
    }
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}
