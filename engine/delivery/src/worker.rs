//! One queue's worker: a tokio task delivering the queue's head, in order, to its
//! destination until detached.
//!
//! ```text
//!  ┌▶ read head entries (merge while ≤ max-batch-rows, same columns) ── none: wait
//!  │        │
//!  │   deliver (panics caught) ─ Ok ────────▶ remove, count, latency ──────────────┐
//!  │        ├─ Retry / RetryAfter / panic ─▶ within retry-for? backoff, again      │
//!  │        │                                 else ─┐                              │
//!  │        ├─ Permanent ───────────────────────────▶ error queues + dead letter ──┤
//!  │        └─ Rejected(rows) ─▶ those rows as Permanent, the rest as Ok ──────────┤
//!  └───────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Head-of-line blocking is intended: a queue's order is its rule's order. The worker
//! never holds more than one merged batch in memory.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use eddy_queue::{Batch, Durability};
use futures::FutureExt as _;
use rand::Rng as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::enqueue::Prepared;
use crate::keys::{self, DeadLetterRecord};
use crate::service::Inner;
use crate::state::{EntrySize, QueueState};
use crate::{
    DeliveryError, DeliveryServiceError, DeliverySettings, Destination, Envelope, QueueId, Row,
};

/// Where a worker delivers, replaceable while it runs.
#[derive(Debug)]
pub(crate) struct Target {
    pub destination: Arc<dyn Destination>,
    pub error_queues: Vec<QueueId>,
}

/// The merged head of a queue.
#[derive(Debug)]
struct InFlight {
    /// Shared with the destination for the call; only this worker holds it while merging.
    envelope: Arc<Envelope>,
    entries: Vec<EntrySize>,
}

/// Why a batch (or part of it) did not go through.
enum Failure {
    Transient(String, Option<Duration>),
    Permanent(String),
    Rejected(Vec<(usize, String)>),
}

struct Worker {
    inner: Arc<Inner>,
    queue: Arc<QueueState>,
    target: watch::Receiver<Arc<Target>>,
    stop: watch::Receiver<bool>,
}

pub(crate) async fn run(
    inner: Arc<Inner>,
    queue: Arc<QueueState>,
    target: watch::Receiver<Arc<Target>>,
    stop: watch::Receiver<bool>,
    previous: Option<JoinHandle<()>>,
) {
    if let Some(previous) = previous {
        // A detached worker may still be in its last attempt.
        let _ = previous.await;
    }
    let mut worker = Worker {
        inner,
        queue,
        target,
        stop,
    };
    worker.run().await;
    tracing::debug!(queue = %worker.queue.id, "delivery worker stopped");
}

impl Worker {
    fn stopped(&self) -> bool {
        *self.stop.borrow() || self.stop.has_changed().is_err()
    }

    /// Sleeps for `pause`; false if told to stop meanwhile.
    async fn pause(&mut self, pause: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(pause) => true,
            _ = self.stop.wait_for(|stop| *stop) => false,
        }
    }

    async fn run(&mut self) {
        let mut storage_failures = 0u32;
        while !self.stopped() {
            let result = match self.read_head().await {
                Ok(Some(batch)) => self.deliver(batch).await,
                Ok(None) => {
                    tokio::select! {
                        () = self.queue.wake.notified() => continue,
                        _ = self.stop.wait_for(|stop| *stop) => break,
                    }
                }
                Err(err) => Err(err),
            };
            match result {
                Ok(()) => storage_failures = 0,
                Err(err) => {
                    // The log failed: wait, then read and deliver the head again.
                    storage_failures += 1;
                    tracing::error!(queue = %self.queue.id, error = %err, "delivery worker");
                    let pause = backoff(&self.inner.settings, storage_failures, None);
                    if !self.pause(pause).await {
                        break;
                    }
                }
            }
        }
    }

    /// The queue's first committed entries, merged.
    async fn read_head(&self) -> Result<Option<InFlight>, DeliveryServiceError> {
        let c = self.queue.counters();
        let max_rows = self.inner.settings.max_batch_rows;
        let mut batch: Option<InFlight> = None;
        for seq in c.head..c.visible {
            let key = keys::key(&self.queue.id, seq);
            let Some(value) = self.inner.entries.get(&key)? else {
                // Dropped meanwhile, or a commit that failed.
                if batch.is_none() {
                    self.queue.skip_to(seq + 1);
                }
                continue;
            };
            let size = |rows| EntrySize {
                seq,
                rows,
                bytes: (key.len() + value.len()) as u64,
            };
            let envelope = match keys::decode_entry(&value) {
                Ok(envelope) => envelope,
                Err(err) if batch.is_none() => {
                    // It can never be delivered: remove it so the queue moves on.
                    tracing::error!(queue = %self.queue.id, seq, error = %err, "removing an undecodable entry");
                    let mut removal = Batch::new();
                    removal.remove(&self.inner.entries, key.clone());
                    self.inner.log.submit(removal).await?;
                    self.queue.remove_head(&[size(0)]);
                    continue;
                }
                Err(_) => break,
            };
            let entry = size(envelope.len() as u64);
            match &mut batch {
                None => {
                    batch = Some(InFlight {
                        envelope: Arc::new(envelope),
                        entries: vec![entry],
                    });
                }
                Some(b) => {
                    if b.envelope.len() + envelope.len() > max_rows
                        || b.envelope.columns != envelope.columns
                    {
                        break;
                    }
                    Arc::make_mut(&mut b.envelope).extend(envelope);
                    b.entries.push(entry);
                }
            }
            if batch.as_ref().is_some_and(|b| b.envelope.len() >= max_rows) {
                break;
            }
        }
        Ok(batch)
    }

    /// Delivers `batch` until it went through, failed for good, or the worker stops.
    async fn deliver(&mut self, batch: InFlight) -> Result<(), DeliveryServiceError> {
        let settings = self.inner.settings;
        let mut attempts = 0u32;
        let mut first_failure: Option<(Instant, u64)> = None;
        loop {
            let target = self.target.borrow().clone();
            attempts += 1;
            let outcome = AssertUnwindSafe(target.destination.deliver(&batch.envelope))
                .catch_unwind()
                .await;
            let failure = match outcome {
                Ok(Ok(())) => return self.delivered(&batch).await,
                Ok(Err(DeliveryError::Retry(reason))) => Failure::Transient(reason, None),
                Ok(Err(DeliveryError::RetryAfter(after, reason))) => {
                    Failure::Transient(reason, Some(after))
                }
                Ok(Err(DeliveryError::Permanent(reason))) => Failure::Permanent(reason),
                Ok(Err(DeliveryError::Rejected(rows))) => Failure::Rejected(rows),
                Err(panic) => Failure::Transient(
                    format!("destination panicked: {}", panic_message(&*panic)),
                    None,
                ),
            };
            let (since, first_ms) =
                *first_failure.get_or_insert_with(|| (Instant::now(), now_ms()));
            let failed = FailedAt { attempts, first_ms };
            match failure {
                Failure::Transient(reason, after) => {
                    if since.elapsed() >= settings.retry_for {
                        let error = format!("gave up after {attempts} attempts: {reason}");
                        return self.dead_letter(&target, &batch, None, error, failed).await;
                    }
                    self.queue.metrics.retried();
                    let pause = backoff(&settings, attempts, after);
                    tracing::warn!(
                        queue = %self.queue.id, attempts, error = %reason, ?pause,
                        "delivery failed: retrying"
                    );
                    if !self.pause(pause).await {
                        return Ok(());
                    }
                }
                Failure::Permanent(reason) => {
                    return self
                        .dead_letter(&target, &batch, None, reason, failed)
                        .await;
                }
                Failure::Rejected(rows) => {
                    let error = DeliveryError::Rejected(rows.clone()).to_string();
                    return self
                        .dead_letter(&target, &batch, Some(&rows), error, failed)
                        .await;
                }
            }
        }
    }

    /// Removes the delivered batch's entries and counts its rows.
    async fn delivered(&self, batch: &InFlight) -> Result<(), DeliveryServiceError> {
        let mut removal = Batch::new();
        for entry in &batch.entries {
            removal.remove(&self.inner.entries, keys::key(&self.queue.id, entry.seq));
        }
        // Buffered: losing the removal in a crash only redelivers.
        self.inner.log.commit(removal, Durability::Buffered).await?;
        self.queue.remove_head(&batch.entries);
        self.count_delivered(batch.envelope.rows.iter());
        Ok(())
    }

    /// Counts rows a destination took and the latency of the oldest of them.
    fn count_delivered<'a>(&self, rows: impl Iterator<Item = &'a Row>) {
        let mut count = 0;
        let mut oldest: Option<u64> = None;
        for row in rows {
            count += 1;
            // Rows without a timestamp (0) say nothing about latency.
            if row.meta.timestamp_ms > 0 {
                oldest =
                    Some(oldest.map_or(row.meta.timestamp_ms, |o| o.min(row.meta.timestamp_ms)));
            }
        }
        self.queue.metrics.delivered(count);
        if let Some(oldest) = oldest {
            let seconds = now_ms().saturating_sub(oldest) as f64 / 1e3;
            self.queue.metrics.latency(seconds);
        }
    }

    /// In one synced commit: copies the failed rows (all of `batch`, or the `rejected`
    /// ones) to the error queues, records them as a dead letter, removes the entries.
    async fn dead_letter(
        &self,
        target: &Target,
        batch: &InFlight,
        rejected: Option<&[(usize, String)]>,
        error: String,
        failed: FailedAt,
    ) -> Result<(), DeliveryServiceError> {
        let len = batch.envelope.len();
        let mut is_failed = vec![rejected.is_none(); len];
        let failed_rows = match rejected {
            None => Envelope::clone(&batch.envelope),
            Some(rejected) => {
                for (index, _) in rejected {
                    if let Some(flag) = is_failed.get_mut(*index) {
                        *flag = true;
                    }
                }
                Envelope {
                    columns: batch.envelope.columns.clone(),
                    rows: batch
                        .envelope
                        .rows
                        .iter()
                        .zip(&is_failed)
                        .filter(|(_, failed)| **failed)
                        .map(|(row, _)| row.clone())
                        .collect(),
                }
            }
        };
        if failed_rows.is_empty() {
            // Only out-of-range indices were rejected: everything went through.
            return self.delivered(batch).await;
        }
        let Some(first) = batch.entries.first() else {
            return Ok(());
        };
        let mut extra = Batch::new();
        for entry in &batch.entries {
            extra.remove(&self.inner.entries, keys::key(&self.queue.id, entry.seq));
        }
        let record = DeadLetterRecord {
            envelope: failed_rows,
            error,
            attempts: failed.attempts,
            first_failure_ms: failed.first_ms,
            last_failure_ms: now_ms(),
        };
        extra.insert(
            &self.inner.dead,
            keys::key(&self.queue.id, first.seq),
            keys::encode_dead_letter(&record)?,
        );
        let copies = target
            .error_queues
            .iter()
            .map(|q| Prepared::new(self.inner.queue(q), &record.envelope))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner
            .append(copies, extra, Durability::Sync, false)
            .await?;
        let rows = record.envelope.len() as u64;
        self.queue.dead_letters_changed(1, 0);
        self.queue.metrics.failed(rows);
        tracing::warn!(
            queue = %self.queue.id, rows, attempts = failed.attempts, error = %record.error,
            error_queues = target.error_queues.len(), "delivery failed for good: dead-lettered"
        );
        self.queue.remove_head(&batch.entries);
        // The rest of a partly rejected batch went through.
        self.count_delivered(
            batch
                .envelope
                .rows
                .iter()
                .zip(&is_failed)
                .filter(|(_, failed)| !**failed)
                .map(|(row, _)| row),
        );
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct FailedAt {
    attempts: u32,
    first_ms: u64,
}

/// The pause before attempt `attempts + 1`: exponential from `retry_initial`, capped at
/// `retry_max`, with full jitter over [retry_initial, cap] so a fleet of queues that
/// failed together does not retry together; never shorter than a `RetryAfter`.
pub(crate) fn backoff(
    settings: &DeliverySettings,
    attempts: u32,
    after: Option<Duration>,
) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    let cap = settings
        .retry_initial
        .saturating_mul(1u32 << doublings)
        .min(settings.retry_max)
        .max(settings.retry_initial);
    let low = settings.retry_initial.as_nanos() as u64;
    let high = cap.as_nanos() as u64;
    let jittered = Duration::from_nanos(if high > low {
        rand::rng().random_range(low..=high)
    } else {
        high
    });
    after.map_or(jittered, |after| after.max(jittered))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn now_ms() -> u64 {
    u64::try_from(eddy_core::time::unix_now_ms()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let settings = DeliverySettings {
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..DeliverySettings::default()
        };
        for _ in 0..50 {
            assert_eq!(backoff(&settings, 1, None), Duration::from_millis(100));
            let third = backoff(&settings, 3, None);
            assert!(third >= Duration::from_millis(100) && third <= Duration::from_millis(400));
            assert!(backoff(&settings, 40, None) <= Duration::from_secs(1));
            assert!(backoff(&settings, 2, Some(Duration::from_secs(5))) == Duration::from_secs(5));
        }
    }
}
