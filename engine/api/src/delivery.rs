//! The delivery layer as the API sees it: action queues and their dead letters.
//!
//! Like the rule engine, it is reached through a trait ([`DeliveryHook`]) that the `eddy`
//! binary implements over `eddy-delivery`, so this crate links neither the durable log nor
//! the plugins. The answers are the JSON objects the actions return.

use serde_json::Value;

use crate::error::ApiError;

/// Action queues and dead letters; the `eddy` binary wires the real ones in.
#[async_trait::async_trait]
pub trait DeliveryHook: Send + Sync + std::fmt::Debug + 'static {
    /// Every action queue: `{Queue, PendingRows, PendingEntries, PendingBytes, DeadLetters,
    /// Attached}`.
    fn queues(&self) -> Vec<Value>;
    /// A page of dead letters, oldest first, of one queue or all:
    /// `{Queue, Seq, Rows, Error, Attempts, FailedAt}`.
    fn dead_letters(
        &self,
        queue: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Value>, ApiError>;
    /// One dead letter with its rows, if it exists.
    fn dead_letter(&self, queue: &str, seq: u64) -> Result<Option<Value>, ApiError>;
    /// Moves one dead letter (or every one of the queue) back to the end of its queue;
    /// returns how many.
    async fn redrive(&self, queue: &str, seq: Option<u64>) -> Result<usize, ApiError>;
}
