//! The broker's limits, with Tencent's defaults (TENCENT-PROTOCOL.md §1, §11).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Largest PUBLISH payload accepted from a device (Tencent: 16 KB).
    pub max_payload_bytes: u32,
    /// Longest a client may take from TCP accept to a complete CONNECT.
    pub connect_timeout: Duration,
    /// Keepalive values outside this range are refused (Tencent: 0–900 s).
    pub keepalive_max_secs: u16,
    /// Messages queued for one connection before publishers wait (back-pressure).
    pub outgoing_queue: usize,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            max_payload_bytes: 16 * 1024,
            connect_timeout: Duration::from_secs(10),
            keepalive_max_secs: 900,
            outgoing_queue: 1024,
        }
    }
}

impl BrokerSettings {
    /// The codec's inbound limit: the payload plus room for the fixed header, a topic of
    /// Tencent's maximum length and v5 properties.
    pub fn max_packet_bytes(&self) -> u32 {
        self.max_payload_bytes.saturating_add(1024)
    }
}
