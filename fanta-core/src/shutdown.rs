//! A one-way shutdown signal that any number of tasks can wait on.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub(crate) struct Shutdown {
    triggered: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    pub(crate) fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Sets the signal and wakes every waiter. Later calls do nothing.
    pub(crate) fn trigger(&self) {
        if !self.triggered.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    /// Sets the signal without waking anyone, for a forked child whose waiters belong to the
    /// parent's runtime.
    pub(crate) fn mark(&self) {
        self.triggered.store(true, Ordering::Release);
    }

    pub(crate) fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::Acquire)
    }

    /// Completes once the signal is set, at once if it already is.
    pub(crate) async fn wait(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registering before the check means a trigger between the two cannot be missed.
        notified.as_mut().enable();
        if self.is_triggered() {
            return;
        }
        notified.await;
    }
}
