//! The `republish` destination: publishes each row back into the hub's broker.
//!
//! Configuration — Tencent's action body: `{"topic":"PID/dev2/data","qos":1}`. The topic may
//! hold `${field}` variables that each row fills from its own fields (a string as is, a
//! number or boolean as its JSON text), as Tencent documents (`house/${house}/app`). `qos`
//! is optional: by default a row keeps the QoS of the message it came from.
//!
//! A row whose variables cannot be filled is rejected (the rule's error action gets it);
//! the others are published in order.

use eddy_plugin_sdk::{Batch, DeliveryError, Destination, RejectedRow, mqtt};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    topic: String,
    #[serde(default)]
    qos: Option<u8>,
}

struct Republish {
    /// Literal text and field names, alternating from a literal (maybe empty).
    parts: Vec<String>,
    qos: Option<u8>,
}

impl Destination for Republish {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("republish configuration: {e}"))?;
        if config.qos.is_some_and(|q| q > 1) {
            return Err("republish \"qos\" is 0 or 1".into());
        }
        Ok(Self {
            parts: split_template(&config.topic)?,
            qos: config.qos,
        })
    }

    fn deliver(&mut self, batch: &Batch) -> Result<(), DeliveryError> {
        let rows = batch.rows();
        let metas = batch.metas();
        let mut messages = Vec::with_capacity(rows.len());
        let mut rejected = Vec::new();
        for (index, (payload, meta)) in rows.into_iter().zip(metas).enumerate() {
            match self.topic(&payload, meta.json) {
                Ok(topic) => messages.push(mqtt::Message {
                    topic,
                    payload,
                    qos: self.qos.unwrap_or(meta.qos),
                }),
                Err(reason) => rejected.push(RejectedRow {
                    index: index as u32,
                    reason,
                }),
            }
        }
        if !messages.is_empty() {
            mqtt::publish(&messages).map_err(DeliveryError::from)?;
        }
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(DeliveryError::Rejected(rejected))
        }
    }
}

impl Republish {
    fn topic(&self, payload: &[u8], json: bool) -> Result<String, String> {
        if self.parts.len() == 1 {
            return Ok(self.parts[0].clone());
        }
        let row: serde_json::Map<String, Value> = if json {
            serde_json::from_slice(payload).map_err(|e| format!("row is not JSON: {e}"))?
        } else {
            return Err("the topic has variables but the row is not a JSON object".into());
        };
        let mut out = String::new();
        for (i, part) in self.parts.iter().enumerate() {
            if i % 2 == 0 {
                out.push_str(part);
                continue;
            }
            match row.get(part) {
                Some(Value::String(s)) => out.push_str(s),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => out.push_str(&v.to_string()),
                _ => return Err(format!("the row has no string or number field {part:?}")),
            }
        }
        Ok(out)
    }
}

/// `a/${x}/b` → `["a/", "x", "/b"]`.
fn split_template(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("{text:?}: \"${{\" without a closing \"}}\""))?;
        let name = &rest[start + 2..start + end];
        if name.is_empty() {
            return Err(format!("{text:?}: an empty ${{}} variable"));
        }
        parts.push(rest[..start].to_owned());
        parts.push(name.to_owned());
        rest = &rest[start + end + 1..];
    }
    parts.push(rest.to_owned());
    Ok(parts)
}

eddy_plugin_sdk::export_destination!(Republish);
