//! What the plugin-host test binaries share: a recording stand-in for the router and the
//! rows they deliver. (The end-to-end tests in `tests/` run the real broker.)
#![allow(dead_code)] // each test binary uses its own part

use std::sync::{Arc, Mutex};

use eddy_core::destination::{Row, RowMeta};
use eddy_core::{Message, Publish, PublishError};
use eddy_plugin_host::{Connectors, HostSettings, PluginHost};

/// The router's stand-in: records what plugins publish.
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Vec<Message>>);

#[async_trait::async_trait]
impl Publish for Recorder {
    async fn publish(&self, message: Message) -> Result<(), PublishError> {
        self.0.lock().expect("lock").push(message);
        Ok(())
    }
}

impl Recorder {
    pub fn take(&self) -> Vec<Message> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

/// A plugin host whose `mqtt.publish` goes to a [`Recorder`].
pub fn host(settings: HostSettings) -> (Arc<PluginHost>, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let host = PluginHost::new(
        settings,
        Connectors::new(Some(recorder.clone() as Arc<dyn Publish>)),
    )
    .expect("host");
    (host, recorder)
}

/// One row of device `PID/dev`'s `event` topic.
pub fn row(id: String, payload: Vec<u8>, json: bool, qos: u8, seq: u64) -> Row {
    Row {
        id,
        payload,
        json,
        meta: RowMeta {
            topic: "PID/dev/event".into(),
            product_id: "PID".into(),
            device_name: "dev".into(),
            qos,
            seq,
            timestamp_ms: 1_700_000_000_000,
        },
    }
}
