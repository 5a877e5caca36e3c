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
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
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
    /// One row's record value. The CKafka JSON is written directly (no `Value` tree): this
    /// runs once per row.
    fn value(&self, payload: Vec<u8>, meta: &RowMeta, time: &mut (u64, String)) -> Vec<u8> {
        match self.format {
            Format::Raw => payload,
            Format::Ckafka => {
                let seconds = meta.timestamp_ms / 1000;
                if time.0 != seconds || time.1.is_empty() {
                    *time = (seconds, self.time(seconds));
                }
                let mut out = Vec::with_capacity(payload.len() * 4 / 3 + 160);
                let text = |out: &mut Vec<u8>, s: &str| {
                    // Writing a &str into a Vec cannot fail.
                    let _ = serde_json::to_writer(&mut *out, s);
                };
                out.extend_from_slice(br#"{"MsgType":"Publish","Topic":"#);
                text(&mut out, &meta.topic);
                out.extend_from_slice(
                    format!(
                        r#","Seq":{},"PayloadLen":{},"Payload":""#,
                        meta.seq,
                        payload.len()
                    )
                    .as_bytes(),
                );
                let mut encoded = String::with_capacity(payload.len() * 4 / 3 + 4);
                base64::engine::general_purpose::STANDARD.encode_string(&payload, &mut encoded);
                out.extend_from_slice(encoded.as_bytes());
                out.extend_from_slice(br#"","ProductId":"#);
                text(&mut out, &meta.product_id);
                out.extend_from_slice(br#","DeviceName":"#);
                text(&mut out, &meta.device_name);
                out.extend_from_slice(br#","Time":"#);
                text(&mut out, &time.1);
                out.push(b'}');
                out
            }
        }
    }

    /// `YYYY-MM-DD HH:MM:SS` of unix second `seconds` at the configured offset.
    fn time(&self, seconds: u64) -> String {
        i64::try_from(seconds)
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .map(|t| t.to_offset(self.offset))
            .and_then(|t| t.format(TIME).ok())
            .unwrap_or_default()
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
        // Rows of one batch mostly share their second: its text is made once.
        let mut time = (0, String::new());
        match self.broker {
            Broker::Kafka => {
                let records: Vec<kafka::KafkaRecord> = rows
                    .map(|(payload, meta)| kafka::KafkaRecord {
                        topic: self.topic.clone(),
                        key: Some(format!("{}/{}", meta.product_id, meta.device_name).into()),
                        value: self.value(payload, &meta, &mut time),
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
                        payload: self.value(payload, &meta, &mut time),
                        properties: vec![("eddy-message-id".into(), meta.id.clone())],
                    })
                    .collect();
                pulsar::send(&messages).map_err(DeliveryError::from)
            }
        }
    }
}

eddy_plugin_sdk::export_destination!(Queue);
