//! Reading dead letters and moving them back into their queue.
//!
//! ```text
//!  dead-letters: <queue> 0x00 <seq of the batch's first entry> → record
//!       │ redrive (one Sync commit: remove records + append envelopes)
//!       ▼
//!  delivery: <queue> 0x00 <new seq at the tail>
//! ```

use eddy_queue::{Batch, Durability};

use crate::enqueue::Prepared;
use crate::keys;
use crate::{Delivery, DeliveryServiceError, Envelope, QueueId};

/// One dead letter, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterSummary {
    pub queue: QueueId,
    pub seq: u64,
    pub rows: usize,
    /// The destination's last error (or why retrying stopped).
    pub error: String,
    pub attempts: u32,
    /// The last failure, milliseconds since the Unix epoch.
    pub failed_at_ms: u64,
}

/// One dead letter with its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub queue: QueueId,
    pub seq: u64,
    pub envelope: Envelope,
    pub error: String,
    pub attempts: u32,
    pub first_failure_ms: u64,
    pub last_failure_ms: u64,
}

impl Delivery {
    /// Dead letters of `queue` (or of every queue, by queue id then age), skipping
    /// `offset` and returning at most `limit`.
    pub fn dead_letters(
        &self,
        queue: Option<&QueueId>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<DeadLetterSummary>, DeliveryServiceError> {
        let records: Box<dyn Iterator<Item = _>> = match queue {
            Some(queue) => Box::new(self.inner.dead.prefix(&keys::prefix(queue))),
            None => Box::new(self.inner.dead.iter()),
        };
        records
            .skip(offset)
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                let (queue, seq) = keys::parse_key(&key)?;
                let record = keys::decode_dead_letter(&value)?;
                Ok(DeadLetterSummary {
                    queue,
                    seq,
                    rows: record.envelope.len(),
                    error: record.error,
                    attempts: record.attempts,
                    failed_at_ms: record.last_failure_ms,
                })
            })
            .collect()
    }

    /// Dead letter `seq` of `queue`, with its rows.
    pub fn dead_letter(
        &self,
        queue: &QueueId,
        seq: u64,
    ) -> Result<Option<DeadLetter>, DeliveryServiceError> {
        let Some(value) = self.inner.dead.get(&keys::key(queue, seq))? else {
            return Ok(None);
        };
        let record = keys::decode_dead_letter(&value)?;
        Ok(Some(DeadLetter {
            queue: queue.clone(),
            seq,
            envelope: record.envelope,
            error: record.error,
            attempts: record.attempts,
            first_failure_ms: record.first_failure_ms,
            last_failure_ms: record.last_failure_ms,
        }))
    }

    /// Moves dead letter `seq` of `queue` (or all of them, oldest first) back to the
    /// tail of the queue in one commit and wakes its worker; returns how many moved. The
    /// queue's size limit does not apply: an operator asked for it.
    pub async fn redrive(
        &self,
        queue: &QueueId,
        seq: Option<u64>,
    ) -> Result<usize, DeliveryServiceError> {
        let inner = &self.inner;
        // Two redrives must not both move the same records.
        let _redrive = inner.redrive.lock().await;
        let state = inner.queue(queue);
        let records = match seq {
            Some(seq) => {
                let key = keys::key(queue, seq);
                inner
                    .dead
                    .get(&key)?
                    .map(|value| (key, value))
                    .into_iter()
                    .collect::<Vec<_>>()
            }
            None => inner
                .dead
                .prefix(&keys::prefix(queue))
                .map(|item| item.map(|(key, value)| (key.to_vec(), value)))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let mut removals = Batch::new();
        let mut items = Vec::with_capacity(records.len());
        for (key, value) in &records {
            let record = keys::decode_dead_letter(value)?;
            items.push(Prepared::new(state.clone(), &record.envelope)?);
            removals.remove(&inner.dead, key.clone());
        }
        let moved = records.len();
        if moved == 0 {
            return Ok(0);
        }
        inner
            .append(items, removals, Durability::Sync, false)
            .await?;
        state.dead_letters_changed(0, moved as u64);
        tracing::info!(%queue, dead_letters = moved, "dead letters redriven");
        Ok(moved)
    }
}
