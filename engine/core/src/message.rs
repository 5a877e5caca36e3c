//! An accepted message as every stage after the transport sees it.

use std::sync::Arc;

use bytes::Bytes;

use crate::topic::Topic;

/// MQTT delivery guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}

/// A PUBLISH the broker accepted, before it is routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Topic,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// The publishing client's id (for a device, `${ProductId}${DeviceName}`).
    pub publisher: String,
    /// When the broker accepted it, Unix milliseconds.
    pub received_at_ms: i64,
    /// MQTT 5 properties forwarded with it, and its expiry; `None` for most messages.
    pub properties: Option<Arc<MessageProperties>>,
}

impl Message {
    /// Whether the message has expired by `now_ms` (MQTT 5 Message Expiry Interval).
    pub fn expired(&self, now_ms: i64) -> bool {
        self.properties
            .as_ref()
            .and_then(|p| p.expires_at_ms)
            .is_some_and(|at| at <= now_ms)
    }
}

/// The MQTT 5 PUBLISH properties a broker forwards unchanged to subscribers, and when
/// the message expires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageProperties {
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<(String, String)>,
    /// Payload Format Indicator: the payload is UTF-8 text.
    pub payload_is_utf8: bool,
    /// Unix milliseconds after which the message is no longer delivered.
    pub expires_at_ms: Option<i64>,
}
