//! The broker's counters, in the Prometheus project's client types so `eddy` can expose
//! them on `/metrics` (OpenMetrics text).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A `reason` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

impl Reason {
    pub fn of(reason: &'static str) -> Self {
        Self { reason }
    }
}

/// A `listener` label: `tcp`, `tls`, `ws`, `wss`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: &'static str,
}

#[derive(Debug, Default)]
pub struct BrokerMetrics {
    /// Transport handshakes (TLS, TLS-PSK, WebSocket upgrade) that failed or timed out.
    pub transport_failed: Family<ListenerLabel, Counter>,
    /// Live, authenticated MQTT connections.
    pub connections: Gauge,
    /// PUBLISHes accepted and routed.
    pub messages_in: Counter,
    /// Messages handed to a subscriber's connection.
    pub messages_out: Counter,
    /// PUBLISHes not routed, by reason (`acl`, `topic_limits`, `rate`, `qos2`).
    pub publish_refused: Family<Reason, Counter>,
    /// Deliveries dropped, by reason (`rate`, `no_connection`).
    pub dropped: Family<Reason, Counter>,
    /// Refused CONNECTs, by reason.
    pub connect_refused: Family<Reason, Counter>,
    /// Messages in persistent sessions' durable queues (offline and unacknowledged).
    pub queued: Gauge,
    /// QoS 1/2 deliveries sent and not yet acknowledged, over all connections.
    pub in_flight: Gauge,
    /// Retained messages.
    pub retained: Gauge,
}

impl BrokerMetrics {
    /// Registers every metric under `eddy_mqtt_…`.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("eddy_mqtt");
        sub.register(
            "connections",
            "Live authenticated MQTT connections",
            self.connections.clone(),
        );
        sub.register(
            "messages_in",
            "PUBLISHes accepted and routed",
            self.messages_in.clone(),
        );
        sub.register(
            "messages_out",
            "Messages handed to subscribers' connections",
            self.messages_out.clone(),
        );
        sub.register(
            "publish_refused",
            "PUBLISHes not routed, by reason",
            self.publish_refused.clone(),
        );
        sub.register(
            "dropped",
            "Deliveries dropped, by reason",
            self.dropped.clone(),
        );
        sub.register(
            "connect_refused",
            "Refused CONNECTs, by reason",
            self.connect_refused.clone(),
        );
        sub.register(
            "queued",
            "Messages in persistent sessions' durable queues",
            self.queued.clone(),
        );
        sub.register(
            "in_flight",
            "QoS 1/2 deliveries awaiting the client's acknowledgement",
            self.in_flight.clone(),
        );
        sub.register("retained", "Retained messages", self.retained.clone());
        sub.register(
            "transport_failed",
            "TLS / TLS-PSK handshakes and WebSocket upgrades that failed, by listener",
            self.transport_failed.clone(),
        );
    }
}
