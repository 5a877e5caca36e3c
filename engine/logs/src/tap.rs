//! Publish rows: the device log sees every accepted message as a [`MessageTap`] and keeps
//! those devices sent, never waiting; the management plane's messages to devices
//! (PublishMessage, which does not pass the taps) come through
//! [`DeviceLogs::record_publish`].

use std::net::IpAddr;
use std::sync::Arc;

use eddy_core::{DeviceId, Message, MessageTap, Offered};

use crate::{DeviceLogs, LogRecord, Scene};

impl DeviceLogs {
    /// A publish row for `message`, about `device`, from `source` (`device`, `api`).
    pub fn record_publish(
        &self,
        message: &Message,
        device: Option<&DeviceId>,
        client_ip: Option<IpAddr>,
        source: &'static str,
    ) {
        self.record(LogRecord {
            time_ms: message.received_at_ms,
            scene: Scene::Publish,
            result: "success",
            product_id: device.map(|d| d.product_id.to_string()),
            device_name: device.map(|d| d.device_name.to_string()),
            client_id: message.publisher.clone(),
            client_ip: client_ip.map(|ip| ip.to_string()),
            topic: Some(message.topic.as_str().to_owned()),
            content: format!(
                "publish to {} ({} bytes, QoS {})",
                message.topic,
                message.payload.len(),
                message.qos as u8
            ),
            payload: self.keeps_payloads().then(|| message.payload.to_vec()),
            source: Some(source),
            level: None,
        });
    }
}

impl MessageTap for DeviceLogs {
    fn offer(&self, message: &Arc<Message>, client_ip: Option<IpAddr>) -> Offered {
        if let Ok(device) = DeviceId::from_client_id(&message.publisher) {
            self.record_publish(message, Some(&device), client_ip, "device");
        }
        Offered::default()
    }
}
