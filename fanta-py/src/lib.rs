//! The native half of the Python module `fanta`, imported as `fanta._fanta`.
//!
//! The `fanta` package (python/fanta) re-exports what this module defines and adds `AsyncPool`,
//! which is written in Python on top of [`CompletionQueue`](completion_queue::CompletionQueue).
//! Every pool behaviour lives in `fanta-core`; this crate converts arguments, results and
//! errors, and blocks Python threads only through [`blocking::wait_detached`].
//!
//! # Threads
//!
//! Completions run on the core's runtime threads and never touch the interpreter there. A
//! blocking call waits on a condition variable, and an `AsyncPool` reads a completion queue
//! from its event loop. Log events go through a queue to one forwarder thread. So no runtime
//! thread waits for the GIL, which keeps interpreter exit and free-threaded builds safe.
//! Every class is `frozen` and keeps its mutable state behind a `Mutex` or atomics, so that
//! concurrent calls from many Python threads never hit a runtime borrow error.

mod args;
mod blocking;
mod completion_queue;
mod errors;
mod logging;
mod pool;
mod server;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _fanta(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", fanta_core::VERSION)?;
    module.add_class::<pool::Pool>()?;
    module.add_class::<pool::RequestHandle>()?;
    module.add_class::<server::Server>()?;
    module.add_class::<completion_queue::CompletionQueue>()?;
    module.add_function(wrap_pyfunction!(logging::stop_log_forwarding, module)?)?;
    module.add_function(wrap_pyfunction!(logging::reset_after_fork, module)?)?;
    logging::install();
    Ok(())
}
