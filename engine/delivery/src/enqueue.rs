//! Appending to queues: the producers' [`Delivery::enqueue`] and the service's own
//! appends (error-queue copies, redrives), all through [`Inner::append`].
//!
//! ```text
//!  append lock ─┬─ full queue? Block: release, wait for room, start over
//!               │              DropOldest: remove head entries in the same batch
//!               ├─ give out seqs, add counters
//!               └─ submit the batch to the log ─▶ release ─▶ wait for the commit
//!                                                   ─▶ make the seqs visible, wake workers
//! ```
//!
//! Seqs are given out and submitted under one lock, and the log applies batches in
//! submission order, so a worker never sees seq n+1 before seq n.

use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_queue::{Batch, Durability};

use crate::keys;
use crate::service::Inner;
use crate::state::{EntrySize, QueueState};
use crate::{Delivery, DeliveryServiceError, Envelope, FullPolicy, QueueId};

/// One entry ready to append.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub queue: Arc<QueueState>,
    pub value: Vec<u8>,
    pub rows: u64,
}

impl Prepared {
    pub fn new(queue: Arc<QueueState>, envelope: &Envelope) -> Result<Self, DeliveryServiceError> {
        Ok(Self {
            value: keys::encode_entry(envelope)?,
            rows: envelope.len() as u64,
            queue,
        })
    }

    /// Key and value bytes, as the queue's size counts them.
    fn bytes(&self) -> u64 {
        (self.queue.id.as_str().len() + 9 + self.value.len()) as u64
    }
}

impl Delivery {
    /// Appends each envelope to the tail of its queue, all in one commit that has
    /// reached the disk when this returns, then wakes the queues' workers. Empty
    /// envelopes are skipped. A full queue makes this wait
    /// ([`FullPolicy::Block`](crate::FullPolicy)) or drops its oldest entries.
    pub async fn enqueue(
        &self,
        items: Vec<(QueueId, Envelope)>,
    ) -> Result<(), DeliveryServiceError> {
        let prepared = items
            .iter()
            .filter(|(_, envelope)| !envelope.is_empty())
            .map(|(queue, envelope)| Prepared::new(self.inner.queue(queue), envelope))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner
            .append(prepared, Batch::new(), Durability::Sync, true)
            .await
    }
}

/// One queue's share of an append: its state, its entries' `(rows, bytes)` and values.
type Group = (Arc<QueueState>, Vec<(u64, u64)>, Vec<Vec<u8>>);

impl Inner {
    /// Commits `items` (each to the tail of its queue) together with `extra`, atomically.
    /// `bounded` applies the queues' size limit (producers); the service's own moves
    /// (error copies, redrives) are not bounded, so a worker never waits on another
    /// queue's room.
    pub(crate) async fn append(
        &self,
        items: Vec<Prepared>,
        mut extra: Batch,
        durability: Durability,
        bounded: bool,
    ) -> Result<(), DeliveryServiceError> {
        let mut groups: BTreeMap<QueueId, Group> = BTreeMap::new();
        for item in items {
            let size = (item.rows, item.bytes());
            let group = groups
                .entry(item.queue.id.clone())
                .or_insert_with(|| (item.queue.clone(), Vec::new(), Vec::new()));
            group.1.push(size);
            group.2.push(item.value);
        }
        if groups.is_empty() && extra.is_empty() {
            return Ok(());
        }
        let mut closed = self.closed.subscribe();
        let guard = loop {
            let guard = self.append.lock().await;
            if bounded && *closed.borrow_and_update() {
                return Err(DeliveryServiceError::ShutDown);
            }
            if !bounded || self.settings.full_policy == FullPolicy::DropOldest {
                break guard;
            }
            let mut full = None;
            for (queue, sizes, _) in groups.values() {
                let room = queue.room.notified();
                let mut room = Box::pin(room);
                // Registered before the check: a removal after it still wakes us.
                room.as_mut().enable();
                let incoming = sizes.iter().map(|(_, b)| b).sum();
                if !queue.fits(incoming, self.settings.queue_max_bytes) {
                    full = Some((queue.id.clone(), room));
                    break;
                }
            }
            let Some((queue, room)) = full else {
                break guard;
            };
            drop(guard);
            tracing::debug!(%queue, "delivery queue full: producer waits");
            tokio::select! {
                () = room => {}
                _ = closed.wait_for(|closed| *closed) => {
                    return Err(DeliveryServiceError::ShutDown);
                }
            }
        };
        if bounded && self.settings.full_policy == FullPolicy::DropOldest {
            for (queue, sizes, _) in groups.values() {
                let incoming = sizes.iter().map(|(_, b)| b).sum();
                self.drop_oldest(queue, incoming, &mut extra)?;
            }
        }
        let mut reserved = Vec::with_capacity(groups.len());
        for (queue, sizes, values) in groups.into_values() {
            let first = queue.reserve(&sizes);
            for (seq, value) in (first..).zip(values) {
                extra.insert(&self.entries, keys::key(&queue.id, seq), value);
            }
            reserved.push((queue, first, sizes));
        }
        let submitted = self.log.start(extra, durability).await;
        drop(guard);
        let result = match submitted {
            Ok(pending) => pending.wait().await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => {
                for (queue, first, sizes) in reserved {
                    queue.publish(first + sizes.len() as u64);
                }
                Ok(())
            }
            Err(err) => {
                // Usually nothing was applied; if only the fsync failed, the entries exist
                // but are not counted until the next open.
                for (queue, _, sizes) in reserved {
                    queue.unreserve(&sizes);
                }
                Err(err.into())
            }
        }
    }

    /// Adds to `batch` the removal of `queue`'s oldest entries until `incoming` more
    /// bytes fit (or the committed entries are all gone), and counts them as dropped.
    /// Called under the append lock.
    fn drop_oldest(
        &self,
        queue: &QueueState,
        incoming: u64,
        batch: &mut Batch,
    ) -> Result<(), DeliveryServiceError> {
        let c = queue.counters();
        let need = (c.bytes + incoming).saturating_sub(self.settings.queue_max_bytes);
        if need == 0 {
            return Ok(());
        }
        let mut freed = 0;
        let mut dropped = Vec::new();
        for seq in c.head..c.visible {
            if freed >= need {
                break;
            }
            let key = keys::key(&queue.id, seq);
            let Some(value) = self.entries.get(&key)? else {
                continue;
            };
            let bytes = (key.len() + value.len()) as u64;
            dropped.push(EntrySize {
                seq,
                rows: keys::entry_rows(&value).unwrap_or(0),
                bytes,
            });
            freed += bytes;
            batch.remove(&self.entries, key);
        }
        // Counted now, under the append lock, so the next producer sees the room. An
        // entry the worker already has in flight may still be delivered once.
        let rows = queue.remove_head(&dropped);
        if rows > 0 || !dropped.is_empty() {
            queue.metrics.dropped(rows);
            tracing::warn!(
                queue = %queue.id, rows, entries = dropped.len(),
                "delivery queue full: dropped its oldest entries"
            );
        }
        Ok(())
    }
}
