//! CoAP counters, as `eddy_coap_…` on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A `code` label: the response code sent, e.g. `2.05`, `4.01`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Code {
    pub code: String,
}

impl Code {
    pub(crate) fn of(status: coap_lite::ResponseType) -> Self {
        Self {
            code: coap_lite::MessageClass::Response(status).to_string(),
        }
    }
}

#[derive(Debug, Default)]
pub struct CoapMetrics {
    /// Datagrams handled (plain and decrypted DTLS).
    pub datagrams: Counter,
    /// Datagrams that were not well-formed CoAP messages.
    pub malformed: Counter,
    /// Repeated message ids answered from the exchange cache.
    pub duplicates: Counter,
    /// Messages published into the router.
    pub published: Counter,
    /// Responses sent, by code.
    pub answers: Family<Code, Counter>,
    /// Failed or timed-out DTLS handshakes.
    pub dtls_failed: Counter,
    /// Live DTLS sessions.
    pub dtls_sessions: Gauge,
}

impl CoapMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("eddy_coap");
        sub.register(
            "datagrams",
            "CoAP datagrams handled",
            self.datagrams.clone(),
        );
        sub.register(
            "malformed",
            "Datagrams that were not CoAP messages",
            self.malformed.clone(),
        );
        sub.register(
            "duplicates",
            "Repeated message ids answered from the cache",
            self.duplicates.clone(),
        );
        sub.register(
            "published",
            "CoAP messages published",
            self.published.clone(),
        );
        sub.register(
            "answers",
            "CoAP responses sent, by code",
            self.answers.clone(),
        );
        sub.register(
            "dtls_failed",
            "Failed or timed-out DTLS handshakes",
            self.dtls_failed.clone(),
        );
        sub.register(
            "dtls_sessions",
            "Live DTLS sessions",
            self.dtls_sessions.clone(),
        );
    }
}
