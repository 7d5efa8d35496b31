//! The library-owned tokio runtime, and what happens to it across `fork()`.
//!
//! Every pool runs its connection tasks on one multi-threaded runtime that this module builds on
//! first use and never shuts down; its worker threads are named `fanta-worker`. Callers do not
//! need a runtime of their own: the blocking API drives its request from the calling thread
//! while the runtime's threads do the I/O.
//!
//! # Fork
//!
//! `fork()` copies only the calling thread, so in a child process the runtime's worker threads
//! do not exist. A `pthread_atfork` child handler bumps a generation counter. Each pool
//! remembers the generation it was opened in; in the child, its requests fail at once with
//! [`crate::Error::Forked`] instead of waiting forever for threads that are gone. The first
//! pool opened in the child builds a fresh runtime. The parent's runtime object is leaked in
//! the child, because dropping it would wait for the missing threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use tokio::runtime::{Builder, Handle, Runtime};

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static RUNTIME: Mutex<Option<(u64, &'static Runtime)>> = Mutex::new(None);
static ATFORK: Once = Once::new();

/// A handle on the library runtime, tagged with the fork generation it belongs to.
#[derive(Clone, Debug)]
pub(crate) struct RuntimeHandle {
    handle: Handle,
    generation: u64,
}

impl RuntimeHandle {
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Whether the process forked since this handle was taken, leaving it without threads.
    #[inline]
    pub(crate) fn is_stale(&self) -> bool {
        self.generation != FORK_GENERATION.load(Ordering::Relaxed)
    }
}

extern "C" fn after_fork_in_child() {
    // Only an atomic add: the child of a multi-threaded process may call nothing that locks.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Returns a handle on the library runtime, building it if this process has none.
///
/// # Panics
///
/// Panics if the operating system refuses to start the runtime's threads.
pub(crate) fn handle() -> RuntimeHandle {
    ATFORK.call_once(|| {
        // SAFETY: the handler is a plain function that performs one atomic add, which is
        // async-signal-safe as the child side of pthread_atfork requires.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });

    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((built_in, runtime)) = *slot {
        if built_in == generation {
            return RuntimeHandle {
                handle: runtime.handle().clone(),
                generation,
            };
        }
    }

    // The old runtime, if any, belongs to the parent process; it stays leaked.
    let runtime: &'static Runtime = Box::leak(Box::new(build()));
    *slot = Some((generation, runtime));
    RuntimeHandle {
        handle: runtime.handle().clone(),
        generation,
    }
}

fn build() -> Runtime {
    Builder::new_multi_thread()
        .thread_name("fanta-worker")
        .enable_all()
        .build()
        .expect("failed to start the fanta runtime threads")
}

/// Whether the calling thread is inside a tokio runtime, where blocking is not allowed.
pub(crate) fn in_runtime_context() -> bool {
    Handle::try_current().is_ok()
}

/// Returns the number of tasks alive on the library runtime, for tests that check that a
/// closed pool leaves nothing running.
pub fn alive_tasks() -> usize {
    handle().handle().metrics().num_alive_tasks()
}
