//! The in-flight table of one connection: request ids and the callers waiting on them.
//!
//! A request id packs a slot index into its low 20 bits (stored plus one, so an id is never 0)
//! and the slot's generation into its high 12 bits. A slot is freed only when the server has
//! answered its id or the connection has closed, so an id is never reused while the server may
//! still send a response for it. The generation bits make a stray response from a misbehaving
//! server (an answer sent twice) miss the slot's next occupant instead of reaching it.
//!
//! The table also keeps every waiting request's deadline in a min-heap, so that the session
//! task can fail expired requests with one timer per connection instead of one per request.
//! Answered requests leave their heap entries behind; an entry counts only while its slot still
//! waits with the same deadline, and the heap is rebuilt when stale entries outnumber live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::Error;

/// Largest number of requests one connection can have in flight: the ids' 20 index bits.
pub const MAX_SLOTS: u32 = (1 << INDEX_BITS) - 1;

const INDEX_BITS: u32 = 20;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
const GENERATION_MASK: u32 = (1 << (32 - INDEX_BITS)) - 1;
const NO_FREE_SLOT: u32 = u32::MAX;

/// A completion function of [`crate::Pool::submit`].
pub type CompletionFn = Box<dyn FnOnce(Result<Bytes, Error>) + Send>;

/// The receiver of a request's result.
pub enum Responder {
    /// The oneshot of a caller that awaits the result.
    Channel(oneshot::Sender<Result<Bytes, Error>>),
    /// The completion of a submitted request.
    Callback(Callback),
}

impl Responder {
    /// Delivers `result`. A channel whose receiver is gone discards it.
    pub fn respond(self, result: Result<Bytes, Error>) {
        match self {
            Responder::Channel(sender) => {
                let _ = sender.send(result);
            }
            Responder::Callback(mut callback) => callback.call(result),
        }
    }

    /// Whether the caller is gone, so the slot may be abandoned.
    fn is_abandoned(&self) -> bool {
        match self {
            Responder::Channel(sender) => sender.is_closed(),
            Responder::Callback(_) => false,
        }
    }

    fn is_callback(&self, serial: u64) -> bool {
        matches!(self, Responder::Callback(callback) if callback.serial == serial)
    }
}

/// A completion function that runs exactly once: with the result, or with
/// [`Error::Cancelled`] if it is dropped first (its task aborted, or its state torn down).
pub struct Callback {
    function: Option<CompletionFn>,
    /// Identifies the request for cancellation; unique within a pool.
    serial: u64,
}

impl Callback {
    pub fn new(function: CompletionFn, serial: u64) -> Callback {
        Callback {
            function: Some(function),
            serial,
        }
    }

    pub fn serial(&self) -> u64 {
        self.serial
    }

    pub fn call(&mut self, result: Result<Bytes, Error>) {
        if let Some(function) = self.function.take() {
            function(result);
        }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        self.call(Err(Error::Cancelled));
    }
}

enum SlotState {
    Free {
        next_free: u32,
    },
    /// A caller waits for the response until `deadline`.
    Waiting {
        responder: Responder,
        deadline: Instant,
    },
    /// The caller gave up (timeout or cancellation); the server still owes a response.
    Abandoned,
}

struct Slot {
    generation: u32,
    state: SlotState,
}

/// The contents of the slot that a response's id resolved to.
pub enum Taken {
    Waiting(Responder),
    Abandoned,
    /// The id is not in flight: never sent, already answered, or from an old generation.
    Unknown,
}

pub struct PendingTable {
    slots: Vec<Slot>,
    free_head: u32,
    occupied: u32,
    deadlines: BinaryHeap<Reverse<(Instant, u32)>>,
}

/// Stale heap entries tolerated beyond twice the live ones before the heap is rebuilt.
const STALE_DEADLINE_SLACK: usize = 1024;

impl PendingTable {
    pub fn new() -> PendingTable {
        PendingTable {
            slots: Vec::new(),
            free_head: NO_FREE_SLOT,
            occupied: 0,
            deadlines: BinaryHeap::new(),
        }
    }

    /// Slots that are waiting or abandoned; what the server counts as in flight.
    pub fn occupied(&self) -> u32 {
        self.occupied
    }

    /// Stores `responder` in a free slot and returns the request id for it, and whether `deadline`
    /// is now the earliest one (so the timer must be re-armed).
    ///
    /// The caller checks capacity first; at most [`MAX_SLOTS`] slots exist.
    pub fn insert(&mut self, responder: Responder, deadline: Instant) -> (u32, bool) {
        let waiting = SlotState::Waiting {
            responder,
            deadline,
        };
        let index = if self.free_head != NO_FREE_SLOT {
            let index = self.free_head;
            let slot = &mut self.slots[index as usize];
            self.free_head = match slot.state {
                SlotState::Free { next_free } => next_free,
                _ => unreachable!("free list points at an occupied slot"),
            };
            slot.state = waiting;
            index
        } else {
            let index = self.slots.len() as u32;
            assert!(index < MAX_SLOTS, "in-flight table is full");
            self.slots.push(Slot {
                generation: 0,
                state: waiting,
            });
            index
        };

        self.occupied += 1;
        let generation = self.slots[index as usize].generation;
        let id = (generation << INDEX_BITS) | (index + 1);

        if self.deadlines.len() > 2 * self.occupied as usize + STALE_DEADLINE_SLACK {
            self.rebuild_deadlines();
        }
        let earliest = self
            .deadlines
            .peek()
            .is_none_or(|Reverse((first, _))| deadline < *first);
        self.deadlines.push(Reverse((deadline, id)));
        (id, earliest)
    }

    /// The earliest deadline in the heap. It may belong to a request that was already answered,
    /// in which case [`PendingTable::expire`] finds nothing to fail.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines
            .peek()
            .map(|Reverse((deadline, _))| *deadline)
    }

    /// Marks every request whose deadline is at or before `now` as abandoned and returns their
    /// responders. Their ids stay reserved until the server responds, as for any abandoned request.
    pub fn expire(&mut self, now: Instant) -> Vec<Responder> {
        let mut expired = Vec::new();
        while let Some(&Reverse((deadline, id))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();

            let Some(index) = self.index_of(id) else {
                continue;
            };
            let slot = &mut self.slots[index as usize];
            if matches!(slot.state, SlotState::Waiting { deadline: d, .. } if d == deadline) {
                if let SlotState::Waiting { responder, .. } =
                    std::mem::replace(&mut slot.state, SlotState::Abandoned)
                {
                    expired.push(responder);
                }
            }
        }
        expired
    }

    fn rebuild_deadlines(&mut self) {
        let live = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| match slot.state {
                SlotState::Waiting { deadline, .. } => Some(Reverse((
                    deadline,
                    (slot.generation << INDEX_BITS) | (index as u32 + 1),
                ))),
                _ => None,
            });
        self.deadlines = live.collect();
    }

    /// Frees the slot of `id` and returns what it held.
    pub fn take(&mut self, id: u32) -> Taken {
        let Some(index) = self.index_of(id) else {
            return Taken::Unknown;
        };

        let slot = &mut self.slots[index as usize];
        let previous = std::mem::replace(
            &mut slot.state,
            SlotState::Free {
                next_free: self.free_head,
            },
        );
        slot.generation = (slot.generation + 1) & GENERATION_MASK;
        self.free_head = index;
        self.occupied -= 1;

        match previous {
            SlotState::Waiting { responder, .. } => Taken::Waiting(responder),
            SlotState::Abandoned => Taken::Abandoned,
            SlotState::Free { .. } => unreachable!("index_of returned a free slot"),
        }
    }

    /// Marks the request `id` as abandoned by its caller. The slot stays occupied until the
    /// server responds or the connection closes.
    ///
    /// NOTE: a connected server that never responds fills the table with abandoned slots; the
    /// connection then stays full, and unroutable, until it disconnects.
    pub fn abandon(&mut self, id: u32) {
        if let Some(index) = self.index_of(id) {
            let slot = &mut self.slots[index as usize];
            // Only the caller whose receiver is gone may abandon: after 4096 reuses an old id
            // names the slot's next occupant again, whose receiver is still open.
            if matches!(&slot.state, SlotState::Waiting { responder, .. } if responder.is_abandoned())
            {
                slot.state = SlotState::Abandoned;
            }
        }
    }

    /// Empties the table and returns the responders of every waiting request.
    /// Takes the completion of the submitted request `id` with `serial` out of its slot and
    /// marks the slot abandoned. Returns `None` if that request already completed.
    pub fn cancel(&mut self, id: u32, serial: u64) -> Option<Responder> {
        let index = self.index_of(id)?;
        let slot = &mut self.slots[index as usize];
        if !matches!(&slot.state, SlotState::Waiting { responder, .. } if responder.is_callback(serial))
        {
            return None;
        }
        match std::mem::replace(&mut slot.state, SlotState::Abandoned) {
            SlotState::Waiting { responder, .. } => Some(responder),
            _ => unreachable!("the slot was checked to be waiting"),
        }
    }

    pub fn drain(&mut self) -> Vec<Responder> {
        let mut waiting = Vec::with_capacity(self.occupied as usize);
        for slot in self.slots.drain(..) {
            if let SlotState::Waiting { responder, .. } = slot.state {
                waiting.push(responder);
            }
        }
        self.deadlines.clear();
        self.free_head = NO_FREE_SLOT;
        self.occupied = 0;
        waiting
    }

    fn index_of(&self, id: u32) -> Option<u32> {
        let stored = id & INDEX_MASK;
        if stored == 0 {
            return None;
        }
        let index = stored - 1;
        let slot = self.slots.get(index as usize)?;
        let occupied = !matches!(slot.state, SlotState::Free { .. });
        (occupied && slot.generation == id >> INDEX_BITS).then_some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + std::time::Duration::from_secs(3600)
    }

    fn sender() -> (Responder, oneshot::Receiver<Result<Bytes, Error>>) {
        let (sender, receiver) = oneshot::channel();
        (Responder::Channel(sender), receiver)
    }

    #[test]
    fn ids_are_nonzero_and_distinct() {
        let mut table = PendingTable::new();
        let mut ids: Vec<u32> = (0..100)
            .map(|_| table.insert(sender().0, far()).0)
            .collect();
        assert!(ids.iter().all(|&id| id != 0));
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 100);
        assert_eq!(table.occupied(), 100);
    }

    #[test]
    fn reused_slot_gets_new_id() {
        let mut table = PendingTable::new();
        let first = table.insert(sender().0, far()).0;
        assert!(matches!(table.take(first), Taken::Waiting(_)));
        let second = table.insert(sender().0, far()).0;
        assert_ne!(first, second);
        assert!(matches!(table.take(first), Taken::Unknown));
        assert!(matches!(table.take(second), Taken::Waiting(_)));
    }

    #[test]
    fn abandoned_slot_is_held_until_answered() {
        let mut table = PendingTable::new();
        let (waiting, receiver) = sender();
        let id = table.insert(waiting, far()).0;
        drop(receiver);
        table.abandon(id);
        assert_eq!(table.occupied(), 1);

        let other = table.insert(sender().0, far()).0;
        assert_ne!(other, id);
        assert!(matches!(table.take(id), Taken::Abandoned));
        assert_eq!(table.occupied(), 1);
    }

    #[test]
    fn drain_returns_only_waiting_senders() {
        let mut table = PendingTable::new();
        let kept = table.insert(sender().0, far()).0;
        let dropped = table.insert(sender().0, far()).0;
        table.abandon(dropped);
        assert_eq!(table.occupied(), 2);
        assert_eq!(table.drain().len(), 1);
        assert_eq!(table.occupied(), 0);
        assert!(matches!(table.take(kept), Taken::Unknown));
    }

    #[test]
    fn generation_wraps_without_producing_zero() {
        let mut table = PendingTable::new();
        for _ in 0..(GENERATION_MASK + 5) {
            let id = table.insert(sender().0, far()).0;
            assert_ne!(id, 0);
            assert!(matches!(table.take(id), Taken::Waiting(_)));
        }
    }

    #[test]
    fn expire_fails_only_due_waiting_requests() {
        let mut table = PendingTable::new();
        let now = Instant::now();
        let soon = now + std::time::Duration::from_millis(10);

        let (due, mut due_receiver) = sender();
        let (due_id, earliest) = table.insert(due, soon);
        assert!(earliest);
        let (answered, _answered_receiver) = sender();
        let (answered_id, _) = table.insert(answered, soon);
        let (later, _later_receiver) = sender();
        let (_, earliest) = table.insert(later, far());
        assert!(!earliest);
        assert!(matches!(table.take(answered_id), Taken::Waiting(_)));

        assert!(table.expire(now).is_empty());
        assert_eq!(table.next_deadline(), Some(soon));

        let expired = table.expire(soon);
        assert_eq!(expired.len(), 1);
        drop(expired);
        assert!(due_receiver.try_recv().is_err());
        // The expired id stays reserved until the server responds.
        assert_eq!(table.occupied(), 2);
        assert!(matches!(table.take(due_id), Taken::Abandoned));
    }

    #[test]
    fn stale_deadlines_are_compacted() {
        let mut table = PendingTable::new();
        for _ in 0..10_000 {
            let (id, _) = table.insert(sender().0, far());
            assert!(matches!(table.take(id), Taken::Waiting(_)));
        }
        assert!(table.deadlines.len() <= STALE_DEADLINE_SLACK + 2);
    }
}
