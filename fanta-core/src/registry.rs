//! A duplicate-key registry: each key maps to the list of entries registered under it.
//!
//! The pool registers a connection under its key when the connection's HELLO exchange
//! completes and routes requests by reading the entries of that key. The registry is built for
//! that read path:
//!
//! - **Readers never wait for writers.** Each key's entries live in an immutable snapshot
//!   behind an [`ArcSwap`]. [`Group::load`] takes the current snapshot without a lock and
//!   without allocating; a writer builds a new snapshot and swaps it in.
//! - **Writers serialize on a per-key mutex.** Registration is rare (once per connect), so a
//!   writer copies the entry list; the cost grows with the number of entries under one key.
//! - **An entry cannot outlive its owner.** [`Group::register`] returns a [`Registration`];
//!   dropping it removes the entry. Whoever owns the registration (the connection task) removes
//!   its entry on every exit path, including a panic, because unwinding drops it.
//!
//! # Consistency
//!
//! A reader that loaded a snapshot just before an unregistration may still pick the removed
//! entry. The entry's value must therefore tell by itself whether it still accepts work: the
//! pool's connections reject new requests once closed, and the request path then picks again.
//! Once [`Registration`]'s drop returns, no later [`Group::load`] sees the entry.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::{ArcSwap, Guard};
use tokio::sync::Notify;

/// An entry in a group: a value and the id of its registration.
#[derive(Debug)]
pub struct Entry<V> {
    id: u64,
    value: V,
}

impl<V> Entry<V> {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn value(&self) -> &V {
        &self.value
    }
}

impl<V: Clone> Clone for Entry<V> {
    fn clone(&self) -> Self {
        Entry {
            id: self.id,
            value: self.value.clone(),
        }
    }
}

/// A key-to-entries registry. Cloning is cheap and shares the registry.
pub struct Registry<K, V> {
    groups: Arc<Mutex<HashMap<K, Arc<GroupInner<V>>>>>,
}

impl<K, V> Clone for Registry<K, V> {
    fn clone(&self) -> Self {
        Registry {
            groups: self.groups.clone(),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Default for Registry<K, V> {
    fn default() -> Self {
        Registry::new()
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Registry<K, V> {
    pub fn new() -> Registry<K, V> {
        Registry {
            groups: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Returns the handle for `key`, creating an empty group if none exists.
    ///
    /// Hold on to the handle: loading through it skips the key lookup, which is what keeps
    /// routing free of hashing and locking.
    pub fn group(&self, key: K) -> Group<V> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let inner = groups
            .entry(key)
            .or_insert_with(|| Arc::new(GroupInner::new()))
            .clone();
        Group { inner }
    }

    /// Returns a copy of the entries registered under `key`, empty if there are none.
    pub fn lookup(&self, key: &K) -> Vec<Entry<V>> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        match groups.get(key) {
            Some(group) => group.entries.load().to_vec(),
            None => Vec::new(),
        }
    }

    /// Returns the keys that have at least one entry.
    pub fn keys(&self) -> Vec<K> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups
            .iter()
            .filter(|(_, group)| !group.entries.load().is_empty())
            .map(|(key, _)| key.clone())
            .collect()
    }
}

struct GroupInner<V> {
    entries: ArcSwap<Vec<Entry<V>>>,
    // Serializes writers, so that two registrations never both copy the same old list.
    write_lock: Mutex<()>,
    next_id: AtomicU64,
    changed: Notify,
}

impl<V: Clone> GroupInner<V> {
    fn new() -> GroupInner<V> {
        GroupInner {
            entries: ArcSwap::from_pointee(Vec::new()),
            write_lock: Mutex::new(()),
            next_id: AtomicU64::new(1),
            changed: Notify::new(),
        }
    }

    fn remove(&self, id: u64) {
        {
            let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
            let current = self.entries.load();
            if current.iter().any(|entry| entry.id == id) {
                let kept = current
                    .iter()
                    .filter(|entry| entry.id != id)
                    .cloned()
                    .collect();
                self.entries.store(Arc::new(kept));
            }
        }
        self.changed.notify_waiters();
    }
}

/// The entries of one key, shared with the registry it came from.
pub struct Group<V> {
    inner: Arc<GroupInner<V>>,
}

impl<V> Clone for Group<V> {
    fn clone(&self) -> Self {
        Group {
            inner: self.inner.clone(),
        }
    }
}

/// A loaded snapshot of a group's entries; derefs to `Arc<Vec<Entry<V>>>`.
pub type Snapshot<V> = Guard<Arc<Vec<Entry<V>>>>;

impl<V: Clone> Group<V> {
    /// Creates a group that belongs to no registry, for a pool that routes on its own.
    pub fn standalone() -> Group<V> {
        Group {
            inner: Arc::new(GroupInner::new()),
        }
    }

    /// Loads the current entries without locking or allocating.
    ///
    /// Keep the guard only for the duration of one routing decision: a held guard delays
    /// freeing of the snapshot it points to.
    #[inline]
    pub fn load(&self) -> Snapshot<V> {
        self.inner.entries.load()
    }

    /// Number of entries now registered.
    pub fn len(&self) -> usize {
        self.inner.entries.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `value` to the group and returns the registration that removes it again on drop.
    pub fn register(&self, value: V) -> Registration<V> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let _writer = self
                .inner
                .write_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let current = self.inner.entries.load();
            let mut next = Vec::with_capacity(current.len() + 1);
            next.extend(current.iter().cloned());
            next.push(Entry { id, value });
            self.inner.entries.store(Arc::new(next));
        }

        // Waiters are woken only after the write lock is released.
        self.inner.changed.notify_waiters();
        Registration {
            group: Arc::downgrade(&self.inner),
            id,
        }
    }

    /// Completes at the next registration or unregistration in this group.
    ///
    /// To wait for a change without missing one that happens between a failed [`Group::load`]
    /// and this call, create the future with [`Group::changed`] and enable it before loading;
    /// see [`tokio::sync::futures::Notified::enable`].
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.changed.notified()
    }

    /// Wakes every task waiting in [`Group::changed`] without changing the group, for example
    /// because the state the waiters depend on (capacity, shutdown) has changed.
    pub fn wake_waiters(&self) {
        self.inner.changed.notify_waiters();
    }
}

/// Ownership of one registry entry: dropping it removes the entry.
///
/// The registration holds the group weakly, so a group dropped with all its handles does not
/// wait for its registrations.
#[must_use = "dropping a Registration removes its entry at once"]
pub struct Registration<V: Clone> {
    group: Weak<GroupInner<V>>,
    id: u64,
}

impl<V: Clone> Registration<V> {
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<V: Clone> Drop for Registration<V> {
    fn drop(&mut self) {
        if let Some(group) = self.group.upgrade() {
            group.remove(self.id);
        }
    }
}

impl<V: Clone> std::fmt::Debug for Registration<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_adds_and_drop_removes() {
        let registry: Registry<&str, u32> = Registry::new();
        let group = registry.group("db");

        let first = group.register(1);
        let second = group.register(2);
        let values: Vec<u32> = group.load().iter().map(|e| *e.value()).collect();
        assert_eq!(values, vec![1, 2]);

        drop(first);
        let values: Vec<u32> = group.load().iter().map(|e| *e.value()).collect();
        assert_eq!(values, vec![2]);

        drop(second);
        assert!(group.is_empty());
        assert!(registry.keys().is_empty());
    }

    #[test]
    fn duplicate_values_under_one_key_are_kept() {
        let registry: Registry<String, &str> = Registry::new();
        let group = registry.group("k".to_string());
        let _a = group.register("same");
        let _b = group.register("same");
        assert_eq!(registry.lookup(&"k".to_string()).len(), 2);
    }

    #[test]
    fn registration_removed_on_panic() {
        let group: Group<u32> = Group::standalone();
        let cloned = group.clone();
        let result = std::thread::spawn(move || {
            let _registration = cloned.register(7);
            panic!("connection task failed");
        })
        .join();

        assert!(result.is_err());
        assert!(group.is_empty());
    }

    #[test]
    fn snapshot_survives_later_removal() {
        let group: Group<u32> = Group::standalone();
        let registration = group.register(5);
        let snapshot = group.load();
        drop(registration);
        assert_eq!(snapshot.len(), 1);
        assert!(group.load().is_empty());
    }
}
