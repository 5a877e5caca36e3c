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
    /// Longest topic a device may publish or subscribe to, in bytes (Tencent: 255).
    pub device_max_topic_bytes: usize,
    /// Most `/` in a device's topic (Tencent: 6; newer documents say 10).
    pub device_max_topic_slashes: usize,
    /// Most subscriptions one device may hold (Tencent: 100).
    pub device_max_subscriptions: usize,
    /// Messages per second a device may publish, and receive, each (Tencent: 20). Excess
    /// messages are dropped and counted, never queued.
    pub device_rate_per_sec: f64,
    /// How many messages a device may send or receive at once before the rate applies.
    pub device_burst: u32,
    /// Shortest time between two successful CONNECTs of one device (Tencent: 5 s).
    pub device_connect_interval: Duration,
    /// Failed authentications from one address within `auth_failure_window` after which
    /// that address is refused until the window ends (0 turns the limit off).
    pub auth_failure_limit: u32,
    pub auth_failure_window: Duration,
    /// How long a persistent session outlives its connection (MQTT 3 `CleanSession = 0`;
    /// the upper bound of an MQTT 5 client's Session Expiry Interval).
    pub session_expiry: Duration,
    /// Most QoS 1 messages kept for one persistent session (Tencent: 150); the oldest is
    /// dropped and counted when full.
    pub offline_queue_max: usize,
    /// How long a queued message is kept (Tencent: 24 h).
    pub offline_message_ttl: Duration,
    /// Limits for generic (open-broker) clients, all off by default so that a standard
    /// MQTT client — or conformance suite — sees an ordinary broker.
    pub clients: ClientLimits,
}

/// Limits for generic (open-broker) clients.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// Largest packet a generic client may send (its CONNECT is still read within the
    /// device limit, `max_packet_bytes()`).
    pub max_packet_bytes: u32,
    /// Messages per second a client may publish, and receive, each; 0 is no limit.
    pub rate_per_sec: f64,
    pub burst: u32,
    /// Most subscriptions one client may hold; 0 is no limit.
    pub max_subscriptions: usize,
    /// Shortest time between two CONNECTs with one ClientId; zero is no limit.
    pub connect_interval: Duration,
    /// Highest QoS granted.
    pub max_qos: eddy_core::QoS,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            max_packet_bytes: 1024 * 1024,
            rate_per_sec: 0.0,
            burst: 0,
            max_subscriptions: 0,
            connect_interval: Duration::ZERO,
            max_qos: eddy_core::QoS::ExactlyOnce,
        }
    }
}

/// The limits that apply to one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Message rate up and down: (per second, burst).
    pub rate: Option<(f64, u32)>,
    pub max_subscriptions: Option<usize>,
    /// Tencent's topic length and depth limits.
    pub device_topics: bool,
}

impl BrokerSettings {
    /// A Tencent device's limits.
    pub(crate) fn device_limits(&self) -> Limits {
        Limits {
            rate: Some((self.device_rate_per_sec, self.device_burst)),
            max_subscriptions: Some(self.device_max_subscriptions),
            device_topics: true,
        }
    }

    /// A generic client's limits.
    pub(crate) fn client_limits(&self) -> Limits {
        let c = &self.clients;
        Limits {
            rate: (c.rate_per_sec > 0.0).then_some((c.rate_per_sec, c.burst.max(1))),
            max_subscriptions: (c.max_subscriptions > 0).then_some(c.max_subscriptions),
            device_topics: false,
        }
    }
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            max_payload_bytes: 16 * 1024,
            connect_timeout: Duration::from_secs(10),
            keepalive_max_secs: 900,
            outgoing_queue: 1024,
            device_max_topic_bytes: 255,
            device_max_topic_slashes: 6,
            device_max_subscriptions: 100,
            device_rate_per_sec: 20.0,
            device_burst: 20,
            device_connect_interval: Duration::from_secs(5),
            auth_failure_limit: 10,
            auth_failure_window: Duration::from_secs(60),
            session_expiry: Duration::from_secs(24 * 3600),
            offline_queue_max: 150,
            offline_message_ttl: Duration::from_secs(24 * 3600),
            clients: ClientLimits::default(),
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

/// A token bucket: `burst` messages at once, refilled at `rate` per second.
#[derive(Debug)]
pub(crate) struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl RateLimit {
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate_per_sec.max(0.0),
            burst,
            tokens: burst,
            last: std::time::Instant::now(),
        }
    }

    /// How long until the next token.
    pub fn wait(&self) -> std::time::Duration {
        let elapsed = self.last.elapsed().as_secs_f64();
        let tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if tokens >= 1.0 {
            return std::time::Duration::ZERO;
        }
        if self.rate <= 0.0 {
            // No refill: waiting cannot help; look again in a while.
            return std::time::Duration::from_secs(1);
        }
        std::time::Duration::from_secs_f64((1.0 - tokens) / self.rate)
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self) -> bool {
        let now = std::time::Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let mut limit = RateLimit::new(0.0, 3);
        assert_eq!((0..10).filter(|_| limit.allow()).count(), 3);
        let mut limit = RateLimit::new(1e9, 2);
        assert!(
            (0..100).all(|_| limit.allow()),
            "a high rate refills at once"
        );
    }
}
