//! `rust-enrich` — an example Eddy destination plugin.
//!
//! Configuration: `{"topic": "<topic>"}`. For every row of a batch it publishes, with QoS 1,
//! `{"id": <row id>, "by": "rust", "row": <the row as JSON, or null when it is not JSON>}`
//! to `topic`, all rows in one `mqtt.publish` call. The Python and JavaScript examples next
//! to this one do exactly the same.

use eddy_plugin_sdk::{Batch, ConnectorError, DeliveryError, Destination, metrics, mqtt};
use serde_json::{Value, json};

struct Enrich {
    topic: String,
}

impl Destination for Enrich {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Value =
            serde_json::from_str(config).map_err(|e| format!("rust-enrich configuration: {e}"))?;
        match config.get("topic") {
            Some(Value::String(topic)) if !topic.is_empty() => Ok(Self {
                topic: topic.clone(),
            }),
            _ => {
                Err("rust-enrich configuration: \"topic\" (a non-empty string) is required".into())
            }
        }
    }

    fn deliver(&mut self, batch: &Batch) -> Result<(), DeliveryError> {
        let rows = batch.rows();
        let metas = batch.metas();
        let mut messages = Vec::with_capacity(rows.len());
        for (payload, meta) in rows.iter().zip(&metas) {
            let row = if meta.json {
                serde_json::from_slice::<Value>(payload).map_err(|e| {
                    DeliveryError::Permanent(format!("row {}: not JSON: {e}", meta.id))
                })?
            } else {
                Value::Null
            };
            let out = json!({ "id": meta.id, "by": "rust", "row": row });
            messages.push(mqtt::Message {
                topic: self.topic.clone(),
                payload: out.to_string().into_bytes(),
                qos: 1,
            });
        }
        if !messages.is_empty() {
            mqtt::publish(&messages).map_err(|e| match e {
                ConnectorError::Unavailable(why) => DeliveryError::Retry(why),
                ConnectorError::PermissionDenied(why) => {
                    DeliveryError::Permanent(format!("permission denied: {why}"))
                }
                ConnectorError::Invalid(why) => DeliveryError::Permanent(format!("invalid: {why}")),
            })?;
        }
        metrics::counter_add("rows", rows.len() as u64);
        eddy_plugin_sdk::info(&format!(
            "rust-enrich: published {} rows to {}",
            rows.len(),
            self.topic
        ));
        Ok(())
    }
}

eddy_plugin_sdk::export_destination!(Enrich);
