//! An accepted message as every stage after the transport sees it.

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
}
