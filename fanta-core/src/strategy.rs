//! Routing strategies: which registered connection a request goes out on.
//!
//! A strategy sees the registry snapshot of connected connections and returns the index of one
//! that has room for another request, or `None` when every connection is full. It runs on the
//! caller's thread for every request, so it must not lock, allocate or block.
//!
//! Both built-in strategies first choose a starting index and then probe forward past full
//! connections, so a full connection is skipped rather than waited on.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::connection::Connection;
use crate::error::Error;
use crate::registry::Entry;

/// A registry entry as strategies see it.
pub type ConnectionEntry = Entry<Arc<Connection>>;

/// Chooses a connection for each request.
///
/// Implementations are shared by all callers of a pool and called concurrently.
pub trait Strategy: Send + Sync + 'static {
    /// The name by which configurations select this strategy.
    fn name(&self) -> &'static str;

    /// Returns the index into `entries` of a connection with room for one more request, or
    /// `None` if there is none. `entries` may be empty. An index out of range fails the
    /// request with [`Error::InvalidArgument`] naming the strategy.
    fn pick(&self, entries: &[ConnectionEntry]) -> Option<usize>;
}

/// Returns the first index at or after `start` (wrapping) whose connection has capacity.
#[inline]
pub fn probe_from(entries: &[ConnectionEntry], start: usize) -> Option<usize> {
    let len = entries.len();
    (0..len)
        .map(|offset| {
            let index = start + offset;
            if index >= len {
                index - len
            } else {
                index
            }
        })
        .find(|&index| entries[index].value().has_capacity())
}

/// Picks a uniformly random connection, then the next one with capacity.
#[derive(Debug, Default)]
pub struct Random;

impl Strategy for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    #[inline]
    fn pick(&self, entries: &[ConnectionEntry]) -> Option<usize> {
        if entries.is_empty() {
            return None;
        }
        let start = (next_random() % entries.len() as u64) as usize;
        probe_from(entries, start)
    }
}

/// Takes connections in turn, by a counter that all callers of the pool share.
///
/// The counter wraps at `usize::MAX` and is never reset. When membership changes, the next
/// pick is `counter % new_len`, so every live connection keeps receiving an equal share from
/// then on; no connection gets a burst because others came or went.
#[derive(Debug, Default)]
pub struct RoundRobin {
    counter: AtomicUsize,
}

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }
}

impl Strategy for RoundRobin {
    fn name(&self) -> &'static str {
        "round_robin"
    }

    #[inline]
    fn pick(&self, entries: &[ConnectionEntry]) -> Option<usize> {
        if entries.is_empty() {
            return None;
        }
        let ticket = self.counter.fetch_add(1, Ordering::Relaxed);
        probe_from(entries, ticket % entries.len())
    }
}

/// Builds a built-in strategy from its configuration name: `"random"` or `"round_robin"`.
pub fn by_name(name: &str) -> Result<Arc<dyn Strategy>, Error> {
    match name {
        "random" => Ok(Arc::new(Random)),
        "round_robin" => Ok(Arc::new(RoundRobin::new())),
        other => Err(Error::invalid(format!(
            "strategy: expected \"random\" or \"round_robin\", got {other:?}"
        ))),
    }
}

/// Names of the built-in strategies, in the order documentation lists them.
pub const BUILT_IN: [&str; 2] = ["round_robin", "random"];

impl fmt::Debug for dyn Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

thread_local! {
    static RNG_STATE: Cell<u64> = Cell::new(seed_for_thread());
}

fn seed_for_thread() -> u64 {
    // Mixing a stack address with the clock gives each thread a different stream; the
    // generator only spreads load, so it need not be unpredictable.
    let local = 0u8;
    let address = &local as *const u8 as u64;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    splitmix64(address ^ nanos) | 1
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Returns a pseudo-random `u64` from a per-thread xorshift64* generator.
#[inline]
pub(crate) fn next_random() -> u64 {
    RNG_STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// Returns a pseudo-random value in `0..=max`.
pub(crate) fn random_up_to(max: u64) -> u64 {
    if max == u64::MAX {
        return next_random();
    }
    next_random() % (max + 1)
}
