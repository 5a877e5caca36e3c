//! The `http-forward` destination: Tencent's HTTP forward (`{"forward":{"api":…,"token":…}}`).
//!
//! Each row is POSTed to `api` as Tencent forwards a message:
//!
//! ```text
//! POST <api>
//! Content-Type: application/json
//! Signature: hex(sha1(sorted concatenation of token, Timestamp, Nonce))
//! Timestamp: <unix seconds>
//! Nonce: <random number>
//! X-Eddy-Message-Id: <the row's stable id, for de-duplication>
//!
//! {"devicename":…,"payload":<the row, JSON as is, or base64 when not JSON>,
//!  "productid":…,"seq":…,"timestamp":<unix seconds of the message>,"topic":…}
//! ```
//!
//! A 2xx answer delivers the row. 408, 429 (honouring `Retry-After`) and 5xx make the host
//! retry the batch (rows already accepted are sent again: receivers de-duplicate by id);
//! any other status rejects that row (the rule's error action and the dead-letter queue
//! get it).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use eddy_plugin_sdk::{Batch, DeliveryError, Destination, RejectedRow, RetryAfter, http};
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

#[derive(Deserialize)]
struct Config {
    api: String,
    #[serde(default)]
    token: String,
    /// Per-request timeout; 0 = the host's default.
    #[serde(default)]
    timeout_ms: u32,
}

struct Forward {
    config: Config,
}

impl Destination for Forward {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("forward configuration: {e}"))?;
        if !(config.api.starts_with("http://") || config.api.starts_with("https://")) {
            return Err(format!(
                "forward \"api\" must be an http:// or https:// URL, not {:?}",
                config.api
            ));
        }
        Ok(Self { config })
    }

    fn deliver(&mut self, batch: &Batch) -> Result<(), DeliveryError> {
        let mut rejected = Vec::new();
        for (index, (payload, meta)) in batch.rows().into_iter().zip(batch.metas()).enumerate() {
            let payload = match meta.json {
                true => serde_json::from_slice::<Value>(&payload)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&payload).into())),
                false => Value::String(base64::engine::general_purpose::STANDARD.encode(&payload)),
            };
            let body = json!({
                "devicename": meta.device_name,
                "payload": payload,
                "productid": meta.product_id,
                "seq": meta.seq,
                "timestamp": meta.timestamp_ms / 1000,
                "topic": meta.topic,
            });
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                .to_string();
            let mut nonce = [0u8; 4];
            getrandom::fill(&mut nonce).map_err(|e| DeliveryError::Retry(e.to_string()))?;
            let nonce = u32::from_le_bytes(nonce).to_string();
            let request = http::Request {
                method: "POST".into(),
                url: self.config.api.clone(),
                headers: vec![
                    ("Content-Type".into(), "application/json".into()),
                    (
                        "Signature".into(),
                        signature(&self.config.token, &timestamp, &nonce),
                    ),
                    ("Timestamp".into(), timestamp),
                    ("Nonce".into(), nonce),
                    ("X-Eddy-Message-Id".into(), meta.id.clone()),
                ],
                body: body.to_string().into_bytes(),
                timeout_ms: self.config.timeout_ms,
            };
            let response = http::send(&request).map_err(DeliveryError::from)?;
            match response.status {
                200..=299 => {}
                408 | 500..=599 => {
                    return Err(DeliveryError::Retry(format!(
                        "{} answered {}",
                        self.config.api, response.status
                    )));
                }
                429 => {
                    let seconds = response
                        .headers
                        .iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
                        .and_then(|(_, v)| v.trim().parse::<u32>().ok())
                        .unwrap_or(1);
                    return Err(DeliveryError::RetryAfter(RetryAfter {
                        millis: seconds.saturating_mul(1000),
                        reason: format!("{} answered 429", self.config.api),
                    }));
                }
                status => rejected.push(RejectedRow {
                    index: index as u32,
                    reason: format!("{} answered {status}", self.config.api),
                }),
            }
        }
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(DeliveryError::Rejected(rejected))
        }
    }
}

/// Tencent's forward signature: SHA-1 over the sorted concatenation of token, timestamp
/// and nonce, in lowercase hex.
fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

eddy_plugin_sdk::export_destination!(Forward);
