//! One CoAP request and its answer (TENCENT-PROTOCOL.md §2, RFC 7252).
//!
//! ```text
//! datagram ─parse─► CON/NON request? ─dedupe (peer, message id)─► POST?
//!   Uri-Path "${pid}/${dn}/txauth9w0BAQsFA" ─► admit the device ─► 2.05 + token
//!   Uri-Path = topic, option 61 = token     ─► publish as the device ─► 2.05
//! ```
//!
//! Answers are piggybacked on the ACK with code 2.05: Tencent's C SDK takes 2.05 as the
//! only success, treats an ACK with 2.03 as "empty, a separate response follows" and does
//! not recognise an empty 0.00 ACK, so Eddy never sends those. A repeated message id from
//! the same peer within the exchange lifetime gets the first answer again and is not
//! processed twice.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use eddy_broker::{AdmitError, Broker, DevicePublishError};
use eddy_core::{DeviceId, QoS};

use crate::CoapSettings;
use crate::metrics::CoapMetrics;
use crate::tokens::Tokens;

/// The last Uri-Path segment of Tencent's authentication request.
const AUTH_PATH: &str = "txauth9w0BAQsFA";
/// Tencent's options: the auth token, and whether the device wants a response.
const OPTION_TOKEN: u16 = 61;
const OPTION_NEED_RESPONSE: u16 = 62;

/// The longest topic Tencent's CoAP access takes.
const MAX_TOPIC: usize = 128;

/// What the handler knows about where a datagram came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub(crate) peer: SocketAddr,
    /// The DTLS-PSK identity, when the datagram came over DTLS.
    pub(crate) dtls_device: Option<&'a DeviceId>,
}

pub(crate) struct Exchanges {
    broker: Arc<Broker>,
    settings: CoapSettings,
    tokens: Tokens,
    recent: Mutex<Recent>,
    pub(crate) metrics: Arc<CoapMetrics>,
}

impl std::fmt::Debug for Exchanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchanges").finish_non_exhaustive()
    }
}

/// Recent exchanges by (peer, message id): their answer, or `None` while in progress.
#[derive(Debug, Default)]
struct Recent {
    answers: HashMap<(SocketAddr, u16), Option<Bytes>>,
    order: VecDeque<(Instant, (SocketAddr, u16))>,
}

impl Exchanges {
    pub(crate) fn new(broker: Arc<Broker>, settings: CoapSettings) -> Self {
        Self {
            tokens: Tokens::new(settings.token_ttl, settings.max_tokens),
            broker,
            settings,
            recent: Mutex::new(Recent::default()),
            metrics: Arc::new(CoapMetrics::default()),
        }
    }

    /// Counts a failed authentication (a failed DTLS-PSK handshake) from `ip`.
    pub(crate) fn broker_auth_failed(&self, ip: std::net::IpAddr) {
        self.broker.auth_failed(ip);
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Handles one datagram; returns the datagram to send back, if any.
    pub(crate) async fn handle(&self, datagram: &[u8], origin: Origin<'_>) -> Option<Bytes> {
        self.metrics.datagrams.inc();
        let request = match Packet::from_bytes(datagram) {
            Ok(packet) if packet.header.get_version() == 1 => packet,
            _ => return self.malformed(datagram),
        };
        let mid = request.header.message_id;
        let confirmable = match request.header.get_type() {
            MessageType::Confirmable => true,
            MessageType::NonConfirmable => false,
            // Eddy sends no confirmable messages, so it expects no ACK or RST; Tencent's
            // SDK acknowledges with code 0.02 anyway. Nothing to answer.
            MessageType::Acknowledgement | MessageType::Reset => return None,
        };
        if request.header.code == MessageClass::Empty {
            // A CoAP ping (empty CON) is answered with RST (RFC 7252 §4.3).
            return confirmable.then(|| reset(mid));
        }
        let key = (origin.peer, mid);
        {
            let mut recent = self.recent();
            recent.expire(self.settings.exchange_lifetime);
            match recent.answers.get(&key) {
                Some(Some(answer)) => {
                    self.metrics.duplicates.inc();
                    return Some(answer.clone());
                }
                // The first copy is still being processed: its answer will come.
                Some(None) => {
                    self.metrics.duplicates.inc();
                    return None;
                }
                None => {
                    if recent.answers.len() >= self.settings.max_exchanges {
                        recent.evict_oldest();
                    }
                    recent.answers.insert(key, None);
                    recent.order.push_back((Instant::now(), key));
                }
            }
        }
        let (status, payload) = self.request(&request, origin).await;
        let wants_answer = confirmable
            || request
                .get_first_option(CoapOption::Unknown(OPTION_NEED_RESPONSE))
                .is_some_and(|v| v.as_slice() == b"1");
        let answer = wants_answer.then(|| response(&request, confirmable, status, payload));
        if let Some(answer) = &answer {
            self.metrics
                .answers
                .get_or_create(&crate::metrics::Code::of(status))
                .inc();
            if let Some(slot) = self.recent().answers.get_mut(&key) {
                *slot = Some(answer.clone());
            }
        }
        answer
    }

    /// A datagram that is not a well-formed CoAP message: a confirmable one whose header
    /// is readable is rejected with RST, anything else is dropped (RFC 7252 §4.2, §4.3).
    fn malformed(&self, datagram: &[u8]) -> Option<Bytes> {
        self.metrics.malformed.inc();
        let header = datagram.get(..4)?;
        let version = header[0] >> 6;
        let confirmable = (header[0] >> 4) & 0x3 == 0;
        (version == 1 && confirmable).then(|| reset(u16::from_be_bytes([header[2], header[3]])))
    }

    /// The answer to a request: a response code and payload.
    async fn request(&self, request: &Packet, origin: Origin<'_>) -> (ResponseType, Vec<u8>) {
        if request.header.code != MessageClass::Request(RequestType::Post) {
            return (ResponseType::MethodNotAllowed, b"only POST".to_vec());
        }
        // Unrecognised critical (odd-numbered) options make a request unprocessable.
        let critical_unknown = request
            .options()
            .any(|(number, _)| number % 2 == 1 && !matches!(*number, 3 | 7 | 11 | 15 | 61));
        if critical_unknown {
            return (ResponseType::BadOption, Vec::new());
        }
        // Tencent sends the whole path in one Uri-Path option (slashes inside); generic
        // clients split it: both join the same way.
        let path = request
            .get_option(CoapOption::UriPath)
            .map(|segments| {
                segments
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default();
        if request.payload.len() > self.settings.max_payload_bytes {
            return (ResponseType::RequestEntityTooLarge, Vec::new());
        }
        match path
            .strip_suffix(AUTH_PATH)
            .and_then(|p| p.strip_suffix('/'))
        {
            Some(identity) => self.authenticate(identity, request, origin).await,
            None => self.publish(&path, request, origin).await,
        }
    }

    async fn authenticate(
        &self,
        identity: &str,
        request: &Packet,
        origin: Origin<'_>,
    ) -> (ResponseType, Vec<u8>) {
        let unauthorized = (ResponseType::Unauthorized, Vec::new());
        // "${sdkappid};${connid}", possibly followed by a NUL and junk (the C SDK).
        let body = request
            .payload
            .split(|b| *b == 0)
            .next()
            .unwrap_or_default();
        if !body.contains(&b';') {
            return (
                ResponseType::BadRequest,
                b"payload must be sdkappid;connid".to_vec(),
            );
        }
        let Some((product, name)) = identity.split_once('/') else {
            return unauthorized;
        };
        let Ok(device) = DeviceId::from_client_id(&format!("{product}{name}")) else {
            return unauthorized;
        };
        if device.product_id.as_str() != product {
            return unauthorized;
        }
        let peer_ip = origin.peer.ip();
        if self.broker.auth_blocked(peer_ip) {
            return unauthorized;
        }
        match origin.dtls_device {
            // Over DTLS the handshake proved a device's key: only that device.
            Some(proven) if *proven != device => {
                self.broker.auth_failed(peer_ip);
                return unauthorized;
            }
            // Plain CoAP carries no proof of the key (Tencent's protocol): the plain
            // listener is off unless configured.
            Some(_) | None => {}
        }
        match self.broker.admit_device(&device, peer_ip).await {
            Ok(session) => match self.tokens.issue(session) {
                Some(token) => {
                    tracing::info!(%device, peer = %origin.peer, dtls = origin.dtls_device.is_some(), "CoAP device authenticated");
                    (ResponseType::Content, token.into_bytes())
                }
                None => (
                    ResponseType::ServiceUnavailable,
                    b"too many tokens".to_vec(),
                ),
            },
            Err(AdmitError::Unauthorized) => {
                self.broker.auth_failed(peer_ip);
                unauthorized
            }
            Err(AdmitError::Unavailable(err)) => {
                tracing::error!(error = %err, "CoAP authentication: registry unavailable");
                (ResponseType::ServiceUnavailable, Vec::new())
            }
        }
    }

    async fn publish(
        &self,
        topic: &str,
        request: &Packet,
        origin: Origin<'_>,
    ) -> (ResponseType, Vec<u8>) {
        let Some(session) = request
            .get_first_option(CoapOption::Unknown(OPTION_TOKEN))
            .and_then(|token| self.tokens.session(token))
        else {
            return (ResponseType::Unauthorized, Vec::new());
        };
        if origin
            .dtls_device
            .is_some_and(|proven| proven != session.device())
        {
            return (ResponseType::Unauthorized, Vec::new());
        }
        if topic.is_empty() || topic.len() > MAX_TOPIC {
            return (ResponseType::Forbidden, Vec::new());
        }
        // A confirmable request is answered once its message is stored (QoS 1).
        let qos = if request.header.get_type() == MessageType::Confirmable {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        let payload = Bytes::copy_from_slice(&request.payload);
        match self
            .broker
            .publish_as_device(&session, topic, payload, qos)
            .await
        {
            Ok(()) => {
                self.metrics.published.inc();
                (ResponseType::Content, Vec::new())
            }
            Err(DevicePublishError::Forbidden) => (ResponseType::Forbidden, Vec::new()),
            Err(DevicePublishError::RateLimited) => (ResponseType::TooManyRequests, Vec::new()),
            Err(DevicePublishError::Storage(err)) => {
                tracing::error!(error = %err, device = %session.device(), "storing a CoAP message failed");
                (ResponseType::InternalServerError, Vec::new())
            }
        }
    }
}

impl Recent {
    fn expire(&mut self, lifetime: Duration) {
        while let Some((at, _)) = self.order.front() {
            if at.elapsed() < lifetime {
                break;
            }
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_front() {
            self.answers.remove(&key);
        }
    }
}

/// An empty RST for message `mid`.
fn reset(mid: u16) -> Bytes {
    let mut packet = Packet::new();
    packet.header.set_type(MessageType::Reset);
    packet.header.code = MessageClass::Empty;
    packet.header.message_id = mid;
    Bytes::from(packet.to_bytes().unwrap_or_default())
}

/// The response: piggybacked on the ACK for a CON request, a NON with a fresh message id
/// for a NON one; the request's token echoed.
fn response(request: &Packet, confirmable: bool, status: ResponseType, payload: Vec<u8>) -> Bytes {
    let mut packet = Packet::new();
    if confirmable {
        packet.header.set_type(MessageType::Acknowledgement);
        packet.header.message_id = request.header.message_id;
    } else {
        packet.header.set_type(MessageType::NonConfirmable);
        packet.header.message_id = rand::random();
    }
    packet.header.code = MessageClass::Response(status);
    packet.set_token(request.get_token().to_vec());
    packet.payload = payload;
    Bytes::from(packet.to_bytes().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_piggybacked_with_the_token_echoed() {
        let mut req = Packet::new();
        req.header.set_type(MessageType::Confirmable);
        req.header.code = MessageClass::Request(RequestType::Post);
        req.header.message_id = 0x1234;
        req.set_token(vec![1, 0, 0, 0]);
        let bytes = response(&req, true, ResponseType::Content, b"TOKEN".to_vec());
        // ACK, token length 4, 2.05, same message id, token, payload marker, payload.
        assert_eq!(&bytes[..4], &[0x64, 0x45, 0x12, 0x34]);
        assert_eq!(&bytes[4..8], &[1, 0, 0, 0]);
        assert_eq!(&bytes[8..], b"\xffTOKEN");
        assert_eq!(&reset(0xBEEF)[..], &[0x70, 0x00, 0xBE, 0xEF]);
    }
}
