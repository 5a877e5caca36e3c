//! Devices on other transports (CoAP): identified by their own transport, then publishing
//! through the same checks as an MQTT PUBLISH — the device's topic permissions, Tencent's
//! topic limits, its message rate — and into the same router, device services, logs and
//! rules.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use eddy_core::{DeviceId, Message, QoS, Topic};

use crate::Broker;
use crate::acl::DevicePermissions;
use crate::metrics::Reason;
use crate::settings::RateLimit;

/// A device admitted by another transport: its permissions and its publish rate.
#[derive(Debug)]
pub struct DeviceSession {
    device: DeviceId,
    client_id: String,
    permissions: DevicePermissions,
    rate: Mutex<RateLimit>,
    peer_ip: IpAddr,
}

impl DeviceSession {
    pub fn device(&self) -> &DeviceId {
        &self.device
    }
}

/// Why a device was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// Unknown, disabled, or not a key device.
    #[error("the device is unknown, disabled or not a key device")]
    Unauthorized,
    #[error("the registry is unavailable: {0}")]
    Unavailable(String),
}

/// Why a device's message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum DevicePublishError {
    /// Not a valid topic, outside Tencent's topic limits, or not one the device may
    /// publish to.
    #[error("the device may not publish to this topic")]
    Forbidden,
    /// Over the device's message rate.
    #[error("the device's message rate is exceeded")]
    RateLimited,
    /// The message could not be stored; nothing was acknowledged.
    #[error("storing the message failed: {0}")]
    Storage(String),
}

impl Broker {
    /// Admits an enabled key device whose identity its transport established (DTLS-PSK)
    /// or vouched for (Tencent's plain CoAP authentication).
    pub async fn admit_device(
        &self,
        device: &DeviceId,
        peer_ip: IpAddr,
    ) -> Result<DeviceSession, AdmitError> {
        let entry = match self.directory.device(device).await {
            Ok(Some(entry)) if entry.enabled && entry.psk_base64.is_some() => entry,
            Ok(_) => return Err(AdmitError::Unauthorized),
            Err(err) => return Err(AdmitError::Unavailable(err.to_string())),
        };
        let limits = self.settings.device_limits();
        let (per_sec, burst) = limits.rate.unwrap_or((f64::INFINITY, u32::MAX));
        Ok(DeviceSession {
            device: device.clone(),
            client_id: device.client_id(),
            permissions: DevicePermissions::for_device(device, &entry.classes),
            rate: Mutex::new(RateLimit::new(per_sec, burst)),
            peer_ip,
        })
    }

    /// Publishes `payload` to `topic` as the session's device; returns once the message
    /// is routed and, at QoS 1, durable wherever it was queued.
    pub async fn publish_as_device(
        &self,
        session: &DeviceSession,
        topic: &str,
        payload: Bytes,
        qos: QoS,
    ) -> Result<(), DevicePublishError> {
        let refuse = |reason: &'static str| {
            self.metrics
                .publish_refused
                .get_or_create(&Reason::of(reason))
                .inc();
        };
        let settings = &self.settings;
        let within_limits = topic.len() <= settings.device_max_topic_bytes
            && topic.matches('/').count() <= settings.device_max_topic_slashes;
        let topic = match Topic::parse(topic) {
            Ok(topic) if within_limits => topic,
            _ => {
                refuse("topic_limits");
                return Err(DevicePublishError::Forbidden);
            }
        };
        if !session.permissions.may_publish(&topic) {
            refuse("acl");
            return Err(DevicePublishError::Forbidden);
        }
        let allowed = session
            .rate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .allow();
        if !allowed {
            refuse("rate");
            return Err(DevicePublishError::RateLimited);
        }
        let message = Arc::new(Message {
            topic,
            payload,
            qos: qos.min(QoS::AtLeastOnce),
            retain: false,
            publisher: session.client_id.clone(),
            received_at_ms: eddy_core::time::unix_now_ms(),
            properties: None,
        });
        let storage = |e: eddy_queue::QueueError| DevicePublishError::Storage(e.to_string());
        let durable = self
            .route_start(&message, Some(session.peer_ip))
            .await
            .map_err(storage)?;
        if let Some(durable) = durable {
            durable.wait().await.map_err(storage)?;
        }
        Ok(())
    }
}
