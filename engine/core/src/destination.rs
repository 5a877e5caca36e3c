//! What a rule hands to its actions and what a destination answers: the vocabulary shared
//! by the rule engine (producer), the delivery layer (durable queues, retries, dead
//! letters) and the plugin host (the Wasm destinations), so none imports another.
//!
//! One [`Envelope`] is one queue entry: the rows one rule evaluation produced for one
//! action, each with a stable id and the metadata of the message it came from. It is what
//! a plugin sees as its `batch` resource (`sdk-wit/wit/plugin.wit`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a row came from (the plugin's `row-meta`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RowMeta {
    /// The topic of the source message.
    pub topic: String,
    /// Its product and device; empty for generic MQTT clients.
    pub product_id: String,
    pub device_name: String,
    /// Its QoS (0, 1, 2).
    pub qos: u8,
    /// The hub's sequence number of the source message.
    pub seq: u64,
    /// When the hub received it, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// One selected row: its de-duplication id, its payload, its origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Stable across redeliveries and unique per action queue.
    pub id: String,
    /// The rule's SELECT output as a JSON object text — or, when `json` is false, the
    /// source payload unchanged (a rule selecting only `*` over a non-object payload).
    /// Serialised as one byte string (the same postcard bytes as a `u8` sequence, written
    /// and read in one copy).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub json: bool,
    pub meta: RowMeta,
}

/// The rows of one rule evaluation for one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Envelope {
    /// The rule's SELECT column names, in order.
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

impl Envelope {
    /// Appends `other`'s rows (the delivery layer merges consecutive entries into one call).
    pub fn extend(&mut self, other: Envelope) {
        if self.columns.is_empty() {
            self.columns = other.columns;
        }
        self.rows.extend(other.rows);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Why a destination did not deliver a batch, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Transient: retry the whole batch after the delivery layer's backoff.
    #[error("{0}")]
    Retry(String),
    /// Transient, with a pause the destination asked for.
    #[error("{1} (retry after {0:?})")]
    RetryAfter(Duration, String),
    /// Never succeeds: run the rule's error action and dead-letter the batch.
    #[error("{0}")]
    Permanent(String),
    /// These rows (index in the batch, reason) never succeed; every other row was
    /// delivered. The error action and the dead-letter queue take these rows only.
    #[error("{} row(s) rejected, first: {}", .0.len(), .0.first().map(|r| r.1.as_str()).unwrap_or(""))]
    Rejected(Vec<(usize, String)>),
}

/// A place rule output goes to (a plugin instance, in practice). Called with one batch at
/// a time per queue; must be safe to call again with the same rows (at-least-once). The
/// batch is shared (`Arc`) so a destination can keep it for the call without copying rows
/// (a plugin instance holds it as its `batch` resource).
#[async_trait::async_trait]
pub trait Destination: Send + Sync + std::fmt::Debug + 'static {
    async fn deliver(&self, batch: &Arc<Envelope>) -> Result<(), DeliveryError>;
}
