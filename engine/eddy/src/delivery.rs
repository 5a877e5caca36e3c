//! The delivery layer as the API sees it: [`eddy_api::DeliveryHook`] over
//! [`eddy_delivery::Delivery`], with the answers in the shapes the actions return.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eddy_api::DeliveryHook;
use eddy_api::error::ApiError;
use eddy_delivery::{Delivery, DeliveryServiceError, QueueId};
use serde_json::{Value, json};

#[derive(Debug)]
pub struct DeliveryApi(pub Arc<Delivery>);

fn queue_id(queue: &str) -> Result<QueueId, ApiError> {
    QueueId::new(queue).map_err(|e| ApiError::invalid("Queue", e))
}

fn internal(error: DeliveryServiceError) -> ApiError {
    tracing::error!(%error, "delivery layer");
    ApiError::new(
        "InternalError",
        format!("The delivery layer failed: {error}"),
    )
}

#[async_trait::async_trait]
impl DeliveryHook for DeliveryApi {
    fn queues(&self) -> Vec<Value> {
        self.0
            .queues()
            .into_iter()
            .map(|q| {
                json!({
                    "Queue": q.queue.as_str(),
                    "PendingRows": q.pending_rows,
                    "PendingEntries": q.pending_entries,
                    "PendingBytes": q.pending_bytes,
                    "DeadLetters": q.dead_letters,
                    "Attached": q.attached,
                })
            })
            .collect()
    }

    fn dead_letters(
        &self,
        queue: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Value>, ApiError> {
        let queue = queue.map(queue_id).transpose()?;
        let letters = self
            .0
            .dead_letters(queue.as_ref(), offset, limit)
            .map_err(internal)?;
        Ok(letters
            .into_iter()
            .map(|d| {
                json!({
                    "Queue": d.queue.as_str(),
                    "Seq": d.seq,
                    "Rows": d.rows,
                    "Error": d.error,
                    "Attempts": d.attempts,
                    "FailedAt": d.failed_at_ms,
                })
            })
            .collect())
    }

    fn dead_letter(&self, queue: &str, seq: u64) -> Result<Option<Value>, ApiError> {
        let queue = queue_id(queue)?;
        let Some(d) = self.0.dead_letter(&queue, seq).map_err(internal)? else {
            return Ok(None);
        };
        let rows: Vec<Value> = d
            .envelope
            .rows
            .iter()
            .map(|r| {
                let payload = match (r.json, std::str::from_utf8(&r.payload)) {
                    (true, Ok(text)) => text.to_owned(),
                    _ => STANDARD.encode(&r.payload),
                };
                json!({
                    "Id": r.id,
                    "Payload": payload,
                    "PayloadIsJson": r.json,
                    "Topic": r.meta.topic,
                    "ProductId": r.meta.product_id,
                    "DeviceName": r.meta.device_name,
                    "Qos": r.meta.qos,
                    "Seq": r.meta.seq,
                    "Timestamp": r.meta.timestamp_ms,
                })
            })
            .collect();
        Ok(Some(json!({
            "Queue": d.queue.as_str(),
            "Seq": d.seq,
            "Error": d.error,
            "Attempts": d.attempts,
            "FirstFailure": d.first_failure_ms,
            "LastFailure": d.last_failure_ms,
            "Columns": d.envelope.columns,
            "Rows": rows,
        })))
    }

    async fn redrive(&self, queue: &str, seq: Option<u64>) -> Result<usize, ApiError> {
        let queue = queue_id(queue)?;
        self.0.redrive(&queue, seq).await.map_err(internal)
    }
}
