//! # eddy-delivery — durable queues between the rule engine and the destinations
//!
//! The rule engine hands each action's output rows over as [`Envelope`]s; this crate
//! keeps them in the hub's durable log ([`eddy_queue::Log`]) until a [`Destination`]
//! (a Wasm plugin, in practice) has taken them, retrying transient failures with backoff
//! and sending what never succeeds to the rule's error actions and to a dead-letter
//! table an operator can inspect and redrive.
//!
//! ```text
//!  rules ──enqueue (one Sync commit)──▶ table "delivery": <queue> 0x00 <seq> → entry
//!                                            │ one worker task per attached queue, in order
//!                                            ▼
//!                          merge head entries (≤ max-batch-rows) ──deliver──▶ Destination
//!     Ok ──────────────▶ remove entries (Buffered: a lost removal only redelivers)
//!     Retry/RetryAfter ─▶ backoff with full jitter, same batch again, up to retry-for
//!     Permanent/expired ▶ one Sync commit: copy to the error queues (other queues)
//!     (Rejected: only those rows)          + record in table "dead-letters"
//!                                          + remove entries
//!                          dead-letters ──redrive──▶ tail of the queue again
//! ```
//!
//! Delivery is at least once: an entry leaves the log only after its destination said
//! Ok (or it was dead-lettered), so a crash, a [`Delivery::detach`] or a panicking
//! destination redelivers it; rows keep their ids so receivers de-duplicate. Each queue
//! is bounded by bytes on disk: producers wait ([`FullPolicy::Block`]) or the oldest
//! entries are dropped ([`FullPolicy::DropOldest`]). Memory holds only counters per
//! queue and the batch in flight, never the queue itself. Copies into error queues and
//! redrives are not bounded, so a worker never waits for another queue's room.
//!
//! This crate must never decide anything from the content of rows: it moves envelopes.

mod dead_letters;
mod enqueue;
mod keys;
mod metrics;
mod service;
mod state;
mod worker;

use std::fmt;
use std::time::Duration;

pub use eddy_core::destination::{DeliveryError, Destination, Envelope, Row, RowMeta};
pub use eddy_queue::QueueError;

pub use dead_letters::{DeadLetter, DeadLetterSummary};
pub use metrics::{DeliveryCollector, QueueCounts};
pub use service::{Delivery, QueueStatus};

/// The log table of pending entries.
pub const DELIVERY_TABLE: &str = "delivery";
/// The log table of dead letters.
pub const DEAD_LETTER_TABLE: &str = "dead-letters";

/// The name of one delivery queue, e.g. `rule/<rule name>/<action index>`: any non-empty
/// text of at most [`QueueId::MAX_LEN`] bytes without a NUL byte (the key separator).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(String);

impl QueueId {
    pub const MAX_LEN: usize = 1024;

    pub fn new(id: impl Into<String>) -> Result<Self, DeliveryServiceError> {
        let id = id.into();
        if id.is_empty() || id.len() > Self::MAX_LEN || id.contains('\0') {
            return Err(DeliveryServiceError::InvalidQueueId(id));
        }
        Ok(Self(id))
    }

    /// The queue of action `index` of rule `rule`: `rule/<rule>/<index>`.
    pub fn rule_action(rule: &str, index: usize) -> Result<Self, DeliveryServiceError> {
        Self::new(format!("rule/{rule}/{index}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for QueueId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for QueueId {
    type Err = DeliveryServiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// What [`Delivery::enqueue`] does when a queue holds `queue_max_bytes` or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullPolicy {
    /// The producer waits until the queue's worker has made room (back-pressure up to
    /// the rule engine and the publishers).
    #[default]
    Block,
    /// The oldest entries are removed to make room and counted as dropped.
    DropOldest,
}

/// How the delivery layer retries, batches and bounds its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySettings {
    /// The first backoff after a transient failure.
    pub retry_initial: Duration,
    /// The longest backoff (a destination's `RetryAfter` may ask for longer).
    pub retry_max: Duration,
    /// How long a batch keeps being retried after its first failure before it is treated
    /// as permanently failed (error actions, dead letter).
    pub retry_for: Duration,
    /// Consecutive entries are merged into one `deliver` call up to this many rows (an
    /// entry with more rows still goes alone).
    pub max_batch_rows: usize,
    /// The bytes one queue may hold on disk (keys and values); an entry larger than this
    /// is still accepted into an empty queue.
    pub queue_max_bytes: u64,
    pub full_policy: FullPolicy,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            retry_for: Duration::from_secs(3600),
            max_batch_rows: 4096,
            queue_max_bytes: 256 * 1024 * 1024,
            full_policy: FullPolicy::Block,
        }
    }
}

/// Why the delivery layer could not do what it was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryServiceError {
    /// The caller's: a queue name that cannot be a key.
    #[error("invalid delivery queue id {0:?}: 1–1024 bytes without NUL")]
    InvalidQueueId(String),
    /// The durable log failed (disk full, I/O error) or is closed.
    #[error(transparent)]
    Storage(#[from] QueueError),
    /// A record in the log does not decode: a bug or a damaged disk.
    #[error("delivery log: corrupt {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
    /// [`Delivery::open`] was called outside a tokio runtime.
    #[error("the delivery layer needs a tokio runtime")]
    NoRuntime,
    /// [`Delivery::shutdown`] was called.
    #[error("the delivery layer is shut down")]
    ShutDown,
}

/// What [`Delivery::open`] returns on failure (the crate has one error type).
pub type DeliveryOpenError = DeliveryServiceError;
