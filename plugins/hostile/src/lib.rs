//! A deliberately hostile destination for the plugin host's containment tests; never
//! embedded in `eddy`. Its configuration picks the misbehaviour:
//! `{"mode":"spin"}` loops forever, `"memory"` allocates until the memory limit,
//! `"panic"` panics, `"grant"` publishes to a topic it was not granted and reports what the
//! host answered, `"ok"` publishes every row to `{"topic":…}` (a well-behaved control).

use eddy_plugin_sdk::{Batch, DeliveryError, Destination, metrics, mqtt};
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
                metrics::counter_add("grant_checks", 1);
                Err(DeliveryError::Permanent(format!(
                    "the host said: {denied:?}"
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
