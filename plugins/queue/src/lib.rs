//! The `kafka` and `pulsar` destinations: Tencent's CKafka action
//! (`{"ckafka":{"instance":{"id":…,"name":…},"topic":{"name":…}}}`) and Eddy's TDMQ /
//! Pulsar action in the same shape (`{"tdmq":…}`, `{"pulsar":…}`).
//!
//! Each row becomes one record in Tencent's forwarded-message format:
//!
//! ```text
//! {"MsgType":"Publish","Topic":<the message's topic>,"Seq":<its sequence>,
//!  "PayloadLen":<bytes>,"Payload":<the row, base64>,"ProductId":…,"DeviceName":…,
//!  "Time":"YYYY-MM-DD HH:MM:SS"}
//! ```
//!
//! keyed `<ProductId>/<DeviceName>` (one device's records stay in order on one
//! partition), with the row's stable id in the `eddy-message-id` header (Kafka) or
//! property (Pulsar) for de-duplication. `"format":"raw"` sends the row itself instead.
//! `Time` is the message's receive time at `utc-offset-minutes` (default 480: China
//! Standard Time, as Tencent writes it).
//!
//! The whole batch is one connector call, acknowledged by the broker before `deliver`
//! returns; an unreachable broker makes the host retry the batch.

use base64::Engine as _;
use eddy_plugin_sdk::{Batch, DeliveryError, Destination, RowMeta, kafka, pulsar};
use serde::Deserialize;
use serde_json::json;
use time::{OffsetDateTime, UtcOffset, format_description::FormatItem, macros::format_description};

const TIME: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Broker {
    Kafka,
    Pulsar,
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Ckafka,
    Raw,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    /// "kafka" or "pulsar" (set by the hub from the action type).
    broker: Broker,
    /// The Kafka / Pulsar topic every row goes to.
    topic: String,
    #[serde(default)]
    format: Format,
    #[serde(default = "china_standard_time")]
    utc_offset_minutes: i32,
}

fn china_standard_time() -> i32 {
    8 * 60
}

struct Queue {
    broker: Broker,
    topic: String,
    format: Format,
    offset: UtcOffset,
}

impl Queue {
    /// One row's record value.
    fn value(&self, payload: Vec<u8>, meta: &RowMeta) -> Vec<u8> {
        match self.format {
            Format::Raw => payload,
            Format::Ckafka => {
                let time = OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(meta.timestamp_ms) * 1_000_000,
                )
                .ok()
                .map(|t| t.to_offset(self.offset))
                .and_then(|t| t.format(TIME).ok())
                .unwrap_or_default();
                json!({
                    "MsgType": "Publish",
                    "Topic": meta.topic,
                    "Seq": meta.seq,
                    "PayloadLen": payload.len(),
                    "Payload": base64::engine::general_purpose::STANDARD.encode(&payload),
                    "ProductId": meta.product_id,
                    "DeviceName": meta.device_name,
                    "Time": time,
                })
                .to_string()
                .into_bytes()
            }
        }
    }
}

impl Destination for Queue {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("queue configuration: {e}"))?;
        if config.topic.is_empty() {
            return Err("the topic name is empty".into());
        }
        let offset = UtcOffset::from_whole_seconds(config.utc_offset_minutes.saturating_mul(60))
            .map_err(|e| format!("utc-offset-minutes: {e}"))?;
        Ok(Self {
            broker: config.broker,
            topic: config.topic,
            format: config.format,
            offset,
        })
    }

    fn deliver(&mut self, batch: &Batch) -> Result<(), DeliveryError> {
        let rows = batch.rows().into_iter().zip(batch.metas());
        match self.broker {
            Broker::Kafka => {
                let records: Vec<kafka::KafkaRecord> = rows
                    .map(|(payload, meta)| kafka::KafkaRecord {
                        topic: self.topic.clone(),
                        key: Some(format!("{}/{}", meta.product_id, meta.device_name).into()),
                        value: self.value(payload, &meta),
                        headers: vec![("eddy-message-id".into(), meta.id.into_bytes())],
                    })
                    .collect();
                kafka::produce(&records).map_err(DeliveryError::from)
            }
            Broker::Pulsar => {
                let messages: Vec<pulsar::Message> = rows
                    .map(|(payload, meta)| pulsar::Message {
                        topic: self.topic.clone(),
                        key: Some(format!("{}/{}", meta.product_id, meta.device_name)),
                        payload: self.value(payload, &meta),
                        properties: vec![("eddy-message-id".into(), meta.id.clone())],
                    })
                    .collect();
                pulsar::send(&messages).map_err(DeliveryError::from)
            }
        }
    }
}

eddy_plugin_sdk::export_destination!(Queue);
