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
use std::io::Write as _;

use eddy_plugin_sdk::{Batch, DeliveryError, Destination, Packed, kafka, pulsar};
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
    /// Writes one row's record value at the end of `out`. The CKafka JSON is written
    /// directly (no `Value` tree): this runs once per row.
    fn write_value(
        &self,
        out: &mut Vec<u8>,
        payload: &[u8],
        row: &RowFields<'_>,
        time: &mut (u64, String),
    ) {
        match self.format {
            Format::Raw => out.extend_from_slice(payload),
            Format::Ckafka => {
                let seconds = row.timestamp_ms / 1000;
                if time.0 != seconds || time.1.is_empty() {
                    *time = (seconds, self.time(seconds));
                }
                let text = |out: &mut Vec<u8>, s: &[u8]| {
                    if s.iter()
                        .all(|&b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x80)
                    {
                        // Nothing to escape (topics and names almost always).
                        out.push(b'"');
                        out.extend_from_slice(s);
                        out.push(b'"');
                    } else {
                        // Writing a &str into a Vec cannot fail; the hub's metadata is UTF-8.
                        let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(s));
                    }
                };
                out.extend_from_slice(br#"{"MsgType":"Publish","Topic":"#);
                text(out, row.topic);
                let _ = write!(
                    out,
                    r#","Seq":{},"PayloadLen":{},"Payload":""#,
                    row.seq,
                    payload.len()
                );
                let start = out.len();
                out.resize(
                    start + base64::encoded_len(payload.len(), true).unwrap_or(0),
                    0,
                );
                let written = base64::engine::general_purpose::STANDARD
                    .encode_slice(payload, &mut out[start..])
                    .unwrap_or(0);
                out.truncate(start + written);
                out.extend_from_slice(br#"","ProductId":"#);
                text(out, row.product_id);
                out.extend_from_slice(br#","DeviceName":"#);
                text(out, row.device_name);
                out.extend_from_slice(br#","Time":"#);
                text(out, time.1.as_bytes());
                out.push(b'}');
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
        let payloads = batch.payloads();
        let meta = batch.meta_columns();
        let rows = payloads.len();
        // Rows of one batch mostly share their second: its text is made once.
        let mut time = (0, String::new());
        let mut values = Packed::with_capacity(rows, payloads.data.len() * 4 / 3 + rows * 160);
        let mut keys = Packed::with_capacity(
            rows,
            meta.product_ids.data.len() + meta.device_names.data.len() + rows,
        );
        for (i, payload) in payloads.iter().enumerate() {
            let row = RowFields {
                topic: meta.topics.get(i).unwrap_or_default(),
                product_id: meta.product_ids.get(i).unwrap_or_default(),
                device_name: meta.device_names.get(i).unwrap_or_default(),
                seq: meta.seqs.get(i).copied().unwrap_or_default(),
                timestamp_ms: meta.timestamps_ms.get(i).copied().unwrap_or_default(),
            };
            self.write_value(&mut values.data, payload, &row, &mut time);
            values.end_item();
            keys.data.extend_from_slice(row.product_id);
            keys.data.push(b'/');
            keys.data.extend_from_slice(row.device_name);
            keys.end_item();
        }
        match self.broker {
            Broker::Kafka => kafka::produce_packed(&kafka::PackedRecords {
                topic: self.topic.clone(),
                values,
                keys: Some(keys),
                // The row ids, as the host packed them: the de-duplication header.
                header: Some(kafka::PackedHeader {
                    name: "eddy-message-id".into(),
                    values: meta.ids,
                }),
            })
            .map_err(DeliveryError::from),
            Broker::Pulsar => {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                let messages: Vec<pulsar::Message> = (0..rows)
                    .map(|i| pulsar::Message {
                        topic: self.topic.clone(),
                        key: Some(text(keys.get(i).unwrap_or_default())),
                        payload: values.get(i).unwrap_or_default().to_vec(),
                        properties: vec![(
                            "eddy-message-id".into(),
                            text(meta.ids.get(i).unwrap_or_default()),
                        )],
                    })
                    .collect();
                pulsar::send(&messages).map_err(DeliveryError::from)
            }
        }
    }
}

/// The metadata of one row a record is made from.
struct RowFields<'a> {
    topic: &'a [u8],
    product_id: &'a [u8],
    device_name: &'a [u8],
    seq: u64,
    timestamp_ms: u64,
}

eddy_plugin_sdk::export_destination!(Queue);
