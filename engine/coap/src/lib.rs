//! # eddy-coap — CoAP and DTLS-PSK transport → the broker's router
//!
//! Tencent's CoAP access (TENCENT-PROTOCOL.md §2): a device authenticates with a CON
//! POST to `${pid}/${dn}/txauth9w0BAQsFA` and gets a token, then publishes with CON POSTs
//! whose Uri-Path is the topic and option 61 the token. Uplink only.
//!
//! ```text
//! UDP 5683 ─datagram─┐
//! UDP 5684 ─DTLS-PSK─┴─► exchange (dedupe, auth → token, publish) ─► Broker::publish_as_device
//!                                                                    (ACL, limits, rate,
//!                                                                     services, logs, rules)
//! ```
//!
//! Over DTLS the handshake proves the device's key and a token is only issued to, and
//! used by, that device. Plain CoAP carries no proof at all (Tencent's protocol), so its
//! listener is off unless configured.

mod dtls;
mod exchange;
pub mod metrics;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use eddy_broker::{Broker, DeviceDirectory};
use tokio::net::UdpSocket;

pub use metrics::CoapMetrics;

/// The CoAP listeners' settings (`[coap]`).
#[derive(Debug, Clone)]
pub struct CoapSettings {
    /// Largest request payload (Tencent: 1 KB); more gets 4.13.
    pub max_payload_bytes: usize,
    /// How long an authentication token stays valid.
    pub token_ttl: Duration,
    /// Most tokens held at once.
    pub max_tokens: usize,
    /// How long an answer is kept for a repeated message id (RFC 7252 EXCHANGE_LIFETIME).
    pub exchange_lifetime: Duration,
    /// Most answers kept for repeated message ids.
    pub max_exchanges: usize,
    /// Longest a DTLS handshake may take.
    pub dtls_handshake_timeout: Duration,
    /// A DTLS session without a datagram for this long ends.
    pub dtls_idle_timeout: Duration,
    /// Most DTLS sessions at once; more ClientHellos are ignored.
    pub max_dtls_sessions: usize,
}

impl Default for CoapSettings {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024,
            token_ttl: Duration::from_secs(24 * 3600),
            max_tokens: 1_000_000,
            exchange_lifetime: Duration::from_secs(247),
            max_exchanges: 100_000,
            dtls_handshake_timeout: Duration::from_secs(30),
            dtls_idle_timeout: Duration::from_secs(600),
            max_dtls_sessions: 100_000,
        }
    }
}

/// The CoAP server: one exchange handler behind the plain and the DTLS listener.
#[derive(Debug)]
pub struct Coap {
    exchanges: Arc<exchange::Exchanges>,
    settings: CoapSettings,
}

/// Requests handled at once on the plain listener; more wait in the socket's buffer.
const PLAIN_IN_FLIGHT: usize = 1024;

impl Coap {
    pub fn new(broker: Arc<Broker>, settings: CoapSettings) -> Arc<Self> {
        Arc::new(Self {
            exchanges: Arc::new(exchange::Exchanges::new(broker, settings.clone())),
            settings,
        })
    }

    pub fn metrics(&self) -> Arc<CoapMetrics> {
        self.exchanges.metrics.clone()
    }

    /// Serves plain CoAP on `socket` for as long as the future is polled.
    pub async fn serve_udp(self: Arc<Self>, socket: UdpSocket) {
        let socket = Arc::new(socket);
        let permits = Arc::new(tokio::sync::Semaphore::new(PLAIN_IN_FLIGHT));
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, peer) = match socket.recv_from(&mut buf).await {
                Ok(received) => received,
                Err(err) => {
                    tracing::warn!(error = %err, "CoAP socket receive failed");
                    continue;
                }
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let datagram = buf[..n].to_vec();
            let (exchanges, socket) = (self.exchanges.clone(), socket.clone());
            tokio::spawn(async move {
                let origin = exchange::Origin {
                    peer,
                    dtls_device: None,
                };
                if let Some(answer) = exchanges.handle(&datagram, origin).await
                    && let Err(err) = socket.send_to(&answer, peer).await
                {
                    tracing::debug!(%peer, error = %err, "sending a CoAP answer failed");
                }
                drop(permit);
            });
        }
    }

    /// CoAP over DTLS-PSK on `socket` (device keys from `directory`): checks the DTLS
    /// setup now and returns the future that serves for as long as it is polled.
    pub fn serve_dtls(
        self: Arc<Self>,
        socket: UdpSocket,
        directory: Arc<dyn DeviceDirectory>,
    ) -> Result<impl Future<Output = ()> + Send + 'static, String> {
        let context = Arc::new(dtls::DtlsContext::new(directory)?);
        Ok(dtls::serve(
            self.exchanges.clone(),
            socket,
            context,
            self.settings.clone(),
        ))
    }
}
