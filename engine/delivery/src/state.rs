//! What the service keeps in memory per queue: counters, never entries.
//!
//! ```text
//!   seq:  head ............ visible ............ next
//!         │ committed entries │ submitted, not yet │
//!         │ (the worker reads │ applied (invisible)│
//!         │  these, in order) │                    │
//! ```
//!
//! Entries only ever leave a queue from its head (delivered, dead-lettered or dropped),
//! so `head` plus the sizes of what was read is enough to keep `rows`/`bytes` exact even
//! when a drop and the worker remove the same entries concurrently.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::QueueId;
use crate::metrics::QueueMetrics;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Every seq below is gone from the `delivery` table.
    pub head: u64,
    /// Every seq below was committed (or its commit failed: then it is absent).
    pub visible: u64,
    /// The next seq to give out.
    pub next: u64,
    pub rows: u64,
    pub entries: u64,
    /// Key and value bytes of the pending entries, including those not yet visible.
    pub bytes: u64,
    pub dead_letters: u64,
}

/// The size of one stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntrySize {
    pub seq: u64,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug)]
pub(crate) struct QueueState {
    pub id: QueueId,
    counters: Mutex<Counters>,
    pub metrics: QueueMetrics,
    /// New entries for the worker (a permit is kept when it is busy).
    pub wake: Notify,
    /// Entries left the queue: producers blocked on a full queue check again.
    pub room: Notify,
}

impl QueueState {
    pub fn new(id: QueueId, counters: Counters) -> Self {
        Self {
            id,
            counters: Mutex::new(counters),
            metrics: QueueMetrics::default(),
            wake: Notify::new(),
            room: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn counters(&self) -> Counters {
        *self.lock()
    }

    /// Whether `incoming` more bytes fit under `max` (anything fits an empty queue).
    pub fn fits(&self, incoming: u64, max: u64) -> bool {
        let c = self.lock();
        c.entries == 0 || c.bytes.saturating_add(incoming) <= max
    }

    /// Gives out consecutive seqs for entries of these sizes (`(rows, bytes)`) and counts
    /// them as pending; returns the first seq. Called under the service's append lock,
    /// so seqs are submitted to the log in the order they are given out.
    pub fn reserve(&self, sizes: &[(u64, u64)]) -> u64 {
        let mut c = self.lock();
        let first = c.next;
        c.next += sizes.len() as u64;
        for (rows, bytes) in sizes {
            c.rows += rows;
            c.bytes += bytes;
            c.entries += 1;
        }
        first
    }

    /// Undoes [`Self::reserve`] after a failed commit (the seqs stay unused: a gap the
    /// worker skips).
    pub fn unreserve(&self, sizes: &[(u64, u64)]) {
        let mut c = self.lock();
        for (rows, bytes) in sizes {
            c.rows = c.rows.saturating_sub(*rows);
            c.bytes = c.bytes.saturating_sub(*bytes);
            c.entries = c.entries.saturating_sub(1);
        }
        drop(c);
        self.room.notify_waiters();
    }

    /// Seqs below `end` are committed: the worker may read them.
    pub fn publish(&self, end: u64) {
        let mut c = self.lock();
        c.visible = c.visible.max(end);
        drop(c);
        self.wake.notify_one();
    }

    /// These head entries (in seq order) are removed; those another remover already
    /// took are not counted twice. Returns the rows this call removed.
    pub fn remove_head(&self, removed: &[EntrySize]) -> u64 {
        let Some(last) = removed.last() else {
            return 0;
        };
        let mut c = self.lock();
        let mut rows = 0;
        let head = c.head;
        for entry in removed.iter().filter(|e| e.seq >= head) {
            rows += entry.rows;
            c.rows = c.rows.saturating_sub(entry.rows);
            c.bytes = c.bytes.saturating_sub(entry.bytes);
            c.entries = c.entries.saturating_sub(1);
        }
        c.head = c.head.max(last.seq + 1);
        drop(c);
        self.room.notify_waiters();
        rows
    }

    /// The worker found no entry below `seq` (gaps of failed commits): skip them.
    pub fn skip_to(&self, seq: u64) {
        let mut c = self.lock();
        c.head = c.head.max(seq);
    }

    pub fn dead_letters_changed(&self, added: u64, removed: u64) {
        let mut c = self.lock();
        c.dead_letters = (c.dead_letters + added).saturating_sub(removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_removals_of_the_same_head_count_once() {
        let q = QueueState::new(QueueId::new("q").expect("id"), Counters::default());
        let first = q.reserve(&[(2, 10), (3, 10), (1, 10)]);
        assert_eq!(first, 0);
        q.publish(3);
        let e = |seq, rows| EntrySize {
            seq,
            rows,
            bytes: 10,
        };
        // A drop takes seq 0; the worker then reports 0 and 1 delivered.
        assert_eq!(q.remove_head(&[e(0, 2)]), 2);
        assert_eq!(q.remove_head(&[e(0, 2), e(1, 3)]), 3);
        let c = q.counters();
        assert_eq!((c.head, c.rows, c.entries, c.bytes), (2, 1, 1, 10));
        assert!(!q.fits(1000, 20) && q.fits(10, 20));
    }
}
