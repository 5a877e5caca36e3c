//! A deliberately hostile destination for the plugin host's containment tests; never
//! embedded in `eddy`. Its configuration picks the misbehaviour:
//! `{"mode":"spin"}` loops forever, `"memory"` allocates until the memory limit,
//! `"panic"` panics, `"grant"` publishes (and produces to Kafka) where it was not granted
//! and reports what the host answered, `"bad-calls"` makes malformed connector calls and
//! reports the answers, `"ok"` publishes every row to `{"topic":…}` (a well-behaved
//! control).

use eddy_plugin_sdk::{Batch, DeliveryError, Destination, Packed, kafka, metrics, mqtt};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    mode: String,
    #[serde(default)]
    topic: String,
}

struct Hostile {
    config: Config,
    hoard: Vec<Vec<u8>>,
}

impl Destination for Hostile {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Config = serde_json::from_str(config).map_err(|e| e.to_string())?;
        Ok(Self {
            config,
            hoard: Vec::new(),
        })
    }

    fn deliver(&mut self, batch: &Batch) -> Result<(), DeliveryError> {
        match self.config.mode.as_str() {
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => loop {
                let mut chunk = vec![0u8; 1 << 20];
                chunk[0] = 1;
                self.hoard.push(chunk);
            },
            "panic" => panic!("hostile plugin panics on purpose"),
            "grant" => {
                let denied = mqtt::publish(&[mqtt::Message {
                    topic: "not/granted".into(),
                    payload: b"x".to_vec(),
                    qos: 0,
                }]);
                let rows_denied = mqtt::publish_rows(batch, "not/granted/rows", None, None);
                let kafka_denied = kafka::produce_packed(&kafka::PackedRecords {
                    topic: "not-granted".into(),
                    values: Packed::with_capacity(0, 0),
                    keys: None,
                    header: None,
                });
                metrics::counter_add("grant_checks", 1);
                Err(DeliveryError::Permanent(format!(
                    "the host said: {denied:?} / {rows_denied:?} / {kafka_denied:?}"
                )))
            }
            "bad-calls" => {
                // Calls the host must refuse as invalid, whatever the grants.
                let past_end =
                    mqtt::publish_rows(batch, &self.config.topic, None, Some(&[batch.len()]));
                let bad_qos = mqtt::publish_rows(batch, &self.config.topic, Some(3), None);
                let mut values = Packed::with_capacity(2, 4);
                values.push(b"ab");
                values.ends.push(99);
                let ends_past_data = kafka::produce_packed(&kafka::PackedRecords {
                    topic: self.config.topic.clone(),
                    values,
                    keys: None,
                    header: None,
                });
                let mut values = Packed::with_capacity(2, 4);
                values.push(b"a");
                values.push(b"b");
                let mut keys = Packed::with_capacity(1, 1);
                keys.push(b"k");
                let short_keys = kafka::produce_packed(&kafka::PackedRecords {
                    topic: self.config.topic.clone(),
                    values,
                    keys: Some(keys),
                    header: None,
                });
                Err(DeliveryError::Permanent(format!(
                    "{past_end:?} / {bad_qos:?} / {ends_past_data:?} / {short_keys:?}"
                )))
            }
            _ => {
                let messages: Vec<mqtt::Message> = batch
                    .rows()
                    .into_iter()
                    .map(|payload| mqtt::Message {
                        topic: self.config.topic.clone(),
                        payload,
                        qos: 1,
                    })
                    .collect();
                mqtt::publish(&messages).map_err(|e| DeliveryError::Retry(format!("{e:?}")))
            }
        }
    }
}

eddy_plugin_sdk::export_destination!(Hostile);
