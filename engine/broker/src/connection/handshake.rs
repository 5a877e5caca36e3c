//! The CONNECT handshake: protocol version, authentication, the refusing CONNACK.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use eddy_core::secret::ExposeSecret as _;
use eddy_core::time::unix_now;
use eddy_core::{DeviceId, QoS};
use futures::{SinkExt as _, StreamExt as _};
use rmqtt_codec::error::DecodeError;
use rmqtt_codec::version::ProtocolVersion;
use rmqtt_codec::{MqttCodec, MqttPacket, v3, v5};
use tokio::io::AsyncWriteExt as _;

use crate::acl::DevicePermissions;
use crate::clients::ClientRefusal;
use crate::device_auth::{AuthError, verify_key_device};
use crate::metrics::Reason;
use crate::router::Subscriptions;
use crate::transport::TransportAuth;
use crate::{Broker, ConnectionError};

use super::{Admitted, Io, Permissions};

/// CONNACK, MQTT 3 form, return code 1: unacceptable protocol version.
const UNACCEPTABLE_PROTOCOL: [u8; 4] = [0x20, 0x02, 0x00, 0x01];

/// The protocol name and level of the CONNECT at the start of `buf`, if it is all there.
fn connect_protocol(buf: &[u8]) -> Option<(&[u8], u8)> {
    // Fixed header byte, then a remaining length of 1–4 bytes.
    let len_bytes = buf.get(1..)?.iter().position(|b| b & 0x80 == 0)? + 1;
    let rest = buf.get(1 + len_bytes..)?;
    let name_len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    let name = rest.get(2..2 + name_len)?;
    Some((name, *rest.get(2 + name_len)?))
}

/// The CONNECT fields the broker uses, from either protocol version.
struct Connect {
    v5: bool,
    client_id: String,
    username: Option<String>,
    password: Option<Bytes>,
    keep_alive: u16,
    /// MQTT 3 CleanSession, MQTT 5 Clean Start.
    clean_start: bool,
    /// How long the session should outlive the connection (MQTT 3: forever unless clean).
    session_expiry_secs: u32,
    will: Option<RawWill>,
    /// MQTT 5 Receive Maximum: QoS 1/2 deliveries it accepts unacknowledged.
    receive_max: u16,
    /// MQTT 5 Maximum Packet Size it accepts.
    max_packet_size: Option<u32>,
}

/// A will as the CONNECT carried it, before it is checked.
struct RawWill {
    topic: bytestring::ByteString,
    payload: Bytes,
    qos: rmqtt_codec::types::QoS,
    retain: bool,
    delay_secs: u32,
    /// MQTT 5 will properties, forwarded like a PUBLISH's.
    properties: Option<v5::PublishProperties>,
}

pub(super) async fn handshake(
    broker: &Broker,
    io: &mut Io,
    peer: SocketAddr,
    auth: &TransportAuth,
) -> Result<Option<Admitted>, ConnectionError> {
    let version = match io.next().await {
        Some(Ok((MqttPacket::Version(v), _))) => v,
        Some(Ok(_)) => return Err(ConnectionError::Protocol("expected a CONNECT".into())),
        Some(Err(DecodeError::InvalidProtocol | DecodeError::UnsupportedProtocolLevel)) => {
            // A CONNECT for a protocol we do not speak: answer in MQTT 3's form, the one
            // every client understands (rc 1, unacceptable protocol version), and close.
            let _ = io.get_mut().write_all(&UNACCEPTABLE_PROTOCOL).await;
            return Err(ConnectionError::Refused(
                "unsupported protocol name or level".into(),
            ));
        }
        Some(Err(err)) => return Err(ConnectionError::Decode(format!("{err:?}"))),
        None => return Ok(None),
    };
    // The codec keeps only the level and accepts any name with it; MQTT 3.1 is "MQIsdp"
    // level 3 and 3.1.1 "MQTT" level 4, and another pairing is refused (rc 1).
    if version == ProtocolVersion::MQTT3
        && !matches!(
            connect_protocol(io.read_buffer()),
            Some((b"MQIsdp", 3) | (b"MQTT", 4))
        )
    {
        let _ = io.get_mut().write_all(&UNACCEPTABLE_PROTOCOL).await;
        return Err(ConnectionError::Refused(
            "protocol name and level do not match".into(),
        ));
    }
    let max = broker.settings.max_packet_bytes();
    *io.codec_mut() = match version {
        ProtocolVersion::MQTT3 => MqttCodec::V3(v3::Codec::new(max)),
        ProtocolVersion::MQTT5 => MqttCodec::V5(v5::Codec::new(max, max)),
    };
    let connect = match io.next().await {
        Some(Ok((MqttPacket::V3(v3::Packet::Connect(c)), _))) => Connect {
            v5: false,
            client_id: c.client_id.to_string(),
            username: c.username.map(|u| u.to_string()),
            password: c.password,
            keep_alive: c.keep_alive,
            clean_start: c.clean_session,
            session_expiry_secs: if c.clean_session { 0 } else { u32::MAX },
            will: c.last_will.map(|w| RawWill {
                topic: w.topic,
                payload: w.message,
                qos: w.qos,
                retain: w.retain,
                delay_secs: 0,
                properties: None,
            }),
            receive_max: u16::MAX,
            max_packet_size: None,
        },
        Some(Ok((MqttPacket::V5(v5::Packet::Connect(c)), _))) => Connect {
            v5: true,
            client_id: c.client_id.to_string(),
            username: c.username.map(|u| u.to_string()),
            password: c.password,
            keep_alive: c.keep_alive,
            clean_start: c.clean_start,
            session_expiry_secs: c.session_expiry_interval_secs,
            will: c.last_will.map(|w| RawWill {
                topic: w.topic,
                payload: w.message,
                qos: w.qos,
                retain: w.retain,
                delay_secs: w.will_delay_interval_sec.unwrap_or(0),
                properties: Some(v5::PublishProperties {
                    correlation_data: w.correlation_data,
                    message_expiry_interval: w.message_expiry_interval,
                    content_type: w.content_type,
                    user_properties: w.user_properties,
                    is_utf8_payload: w.is_utf8_payload.unwrap_or(false),
                    response_topic: w.response_topic,
                    ..Default::default()
                }),
            }),
            receive_max: c.receive_max.map_or(u16::MAX, std::num::NonZeroU16::get),
            max_packet_size: c.max_packet_size.map(std::num::NonZeroU32::get),
        },
        Some(Ok(_)) => return Err(ConnectionError::Protocol("expected a CONNECT".into())),
        Some(Err(err)) => return Err(ConnectionError::Decode(format!("{err:?}"))),
        None => return Ok(None),
    };
    let mut connect = connect;
    // An empty ClientId asks the broker for one (MQTT 5 always; MQTT 3.1.1 with a clean
    // session). Only generic clients can do that: a device's ClientId is its identity.
    let assigned = connect.client_id.is_empty()
        && broker.clients.enabled()
        && (connect.v5 || connect.clean_start);
    if assigned {
        connect.client_id = format!("eddy-{:032x}", rand::random::<u128>());
    }
    let verdict = if broker.auth_blocked(peer.ip()) {
        Err(Refusal::TooManyFailures)
    } else {
        authenticate(broker, &connect, auth).await
    };
    if let Err(refusal @ (Refusal::BadCredentials | Refusal::NotAuthorized | Refusal::ClientId)) =
        &verdict
    {
        broker.auth_failed(peer.ip());
        let device = eddy_core::DeviceId::from_client_id(&connect.client_id).ok();
        broker.events.emit(
            crate::events::ClientEventKind::AuthFailed,
            &std::sync::Arc::from(connect.client_id.as_str()),
            device.as_ref(),
            peer.ip(),
            &format!("{refusal:?}"),
        );
    }
    match verdict {
        Ok((device, permissions, max_qos)) => {
            // Over the limit: a device is refused (Tencent's rule); an MQTT 5 generic
            // client is told the server's keepalive instead; an MQTT 3 one, which cannot
            // be told, keeps its own.
            let keepalive_max = broker.settings.keepalive_max_secs;
            let mut keep_alive = connect.keep_alive;
            let mut server_keep_alive = None;
            if device.is_none() && keep_alive > keepalive_max && connect.v5 {
                keep_alive = keepalive_max;
                server_keep_alive = Some(keepalive_max);
            }
            if device.is_some() && keep_alive > keepalive_max {
                send_connack(io, connect.v5, Refusal::BadKeepAlive).await?;
                return Err(ConnectionError::Refused(format!(
                    "keepalive {} s is over the {} s limit",
                    connect.keep_alive, broker.settings.keepalive_max_secs
                )));
            }
            let will = match check_will(&connect, &permissions, max_qos) {
                Ok(will) => will,
                Err(refusal) => {
                    tracing::info!(%peer, client_id = %connect.client_id, "CONNECT refused: will topic not permitted");
                    send_connack(io, connect.v5, refusal).await?;
                    return Ok(None);
                }
            };
            // A generic client's packets may be as large as its own limit allows.
            if device.is_none() {
                let max = broker.settings.clients.max_packet_bytes;
                *io.codec_mut() = if connect.v5 {
                    MqttCodec::V5(v5::Codec::new(max, max))
                } else {
                    MqttCodec::V3(v3::Codec::new(max))
                };
            }
            let limits = if device.is_some() {
                broker.settings.device_limits()
            } else {
                broker.settings.client_limits()
            };
            Ok(Some(Admitted {
                assigned_client_id: assigned,
                limits,
                v5: connect.v5,
                client_id: Arc::from(connect.client_id.as_str()),
                device,
                permissions,
                keep_alive,
                server_keep_alive,
                max_qos,
                clean_start: connect.clean_start,
                // The broker's limit caps what the client asks for.
                session_expiry: std::time::Duration::from_secs(u64::from(
                    connect.session_expiry_secs,
                ))
                .min(broker.settings.session_expiry),
                subscriptions: Subscriptions::default(),
                persistent: None,
                will,
                receive_max: connect.receive_max,
                max_packet_size: connect.max_packet_size,
                peer_ip: peer.ip(),
            }))
        }
        Err(refusal) => {
            tracing::info!(%peer, client_id = %connect.client_id, reason = ?refusal, "CONNECT refused");
            broker
                .metrics
                .connect_refused
                .get_or_create(&Reason::of(refusal.label()))
                .inc();
            send_connack(io, connect.v5, refusal).await?;
            Ok(None)
        }
    }
}

/// Why a CONNECT is refused, by CONNACK code.
#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_protocol_of_a_connect() {
        let v31 = [
            0x10, 0x10, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02,
        ];
        assert_eq!(super::connect_protocol(&v31), Some((&b"MQIsdp"[..], 3)));
        let v311 = [0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02];
        assert_eq!(super::connect_protocol(&v311), Some((&b"MQTT"[..], 4)));
        assert_eq!(super::connect_protocol(&v311[..6]), None, "cut short");
        assert_eq!(super::connect_protocol(&[0x10]), None);
    }
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::TooManyFailures => "too_many_failures",
            Self::ClientId => "client_id",
            Self::BadCredentials => "bad_credentials",
            Self::NotAuthorized => "not_authorized",
            Self::Unavailable => "unavailable",
            Self::BadKeepAlive => "keepalive",
            Self::Will => "will",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Refusal {
    RateLimited,
    /// Too many failed authentications from this address lately.
    TooManyFailures,
    ClientId,
    BadCredentials,
    NotAuthorized,
    Unavailable,
    BadKeepAlive,
    /// The will's topic is invalid or not one the client may publish.
    Will,
}

async fn send_connack(io: &mut Io, v5: bool, refusal: Refusal) -> Result<(), ConnectionError> {
    let packet = if v5 {
        use v5::ConnectAckReason as R;
        let reason_code = match refusal {
            Refusal::RateLimited | Refusal::TooManyFailures => R::ConnectionRateExceeded,
            Refusal::ClientId => R::ClientIdentifierNotValid,
            Refusal::BadCredentials => R::BadUserNameOrPassword,
            Refusal::NotAuthorized | Refusal::Will => R::NotAuthorized,
            Refusal::Unavailable => R::ServerUnavailable,
            Refusal::BadKeepAlive => R::ProtocolError,
        };
        MqttPacket::V5(v5::Packet::ConnectAck(Box::new(v5::ConnectAck {
            reason_code,
            ..Default::default()
        })))
    } else {
        use v3::ConnectAckReason as R;
        let return_code = match refusal {
            Refusal::ClientId => R::IdentifierRejected,
            Refusal::BadCredentials => R::BadUserNameOrPassword,
            Refusal::NotAuthorized | Refusal::Will => R::NotAuthorized,
            Refusal::Unavailable
            | Refusal::BadKeepAlive
            | Refusal::RateLimited
            | Refusal::TooManyFailures => R::ServiceUnavailable,
        };
        MqttPacket::V3(v3::Packet::ConnectAck(v3::ConnectAck {
            session_present: false,
            return_code,
        }))
    };
    io.send(packet)
        .await
        .map_err(|e| ConnectionError::Io(format!("{e:?}")))
}

/// Whether the username has Tencent's device form, `${ClientId};${sdkappid};${connid};
/// ${expiry}`: such a CONNECT is a device's, any other a generic client's.
fn is_device_username(connect: &Connect) -> bool {
    connect.username.as_deref().is_some_and(|u| {
        let mut fields = u.split(';');
        fields.next() == Some(connect.client_id.as_str()) && fields.count() == 3
    })
}

/// Who connects, what it may do, and the highest QoS it may use.
async fn authenticate(
    broker: &Broker,
    connect: &Connect,
    auth: &TransportAuth,
) -> Result<(Option<DeviceId>, Permissions, QoS), Refusal> {
    let clients = &broker.clients;
    // A device proves itself by its password, its TLS-PSK key, or its client certificate.
    let claims_device = match auth {
        TransportAuth::None => is_device_username(connect),
        TransportAuth::Psk(_) => true,
        TransportAuth::Certificate(_) => {
            is_device_username(connect) || DeviceId::from_client_id(&connect.client_id).is_ok()
        }
    };
    if clients.enabled() && !claims_device {
        let identity = clients
            .authenticate(
                &connect.client_id,
                connect.username.as_deref(),
                connect.password.as_deref(),
            )
            .await
            .map_err(|refusal| match refusal {
                ClientRefusal::Disabled | ClientRefusal::AnonymousNotAllowed => {
                    Refusal::NotAuthorized
                }
                ClientRefusal::ClientIdInvalid => Refusal::ClientId,
                ClientRefusal::BadCredentials => Refusal::BadCredentials,
                ClientRefusal::Unavailable => Refusal::Unavailable,
            })?;
        // A registered device's ClientId is the device's: a generic client taking it would
        // kick the device off (one connection per ClientId).
        if let Ok(device) = DeviceId::from_client_id(&connect.client_id)
            && !matches!(broker.directory.device(&device).await, Ok(None))
        {
            return Err(Refusal::ClientId);
        }
        let limits = &broker.settings.clients;
        if !broker.connect_allowed(&connect.client_id, limits.connect_interval) {
            return Err(Refusal::RateLimited);
        }
        let permissions = Permissions::Client(clients.permissions(&identity));
        return Ok((None, permissions, limits.max_qos));
    }
    let device = DeviceId::from_client_id(&connect.client_id).map_err(|_| Refusal::ClientId)?;
    let entry = match broker.directory.device(&device).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return Err(Refusal::NotAuthorized),
        Err(err) => {
            tracing::error!(error = %err, "device lookup failed");
            return Err(Refusal::Unavailable);
        }
    };
    if !entry.enabled {
        // Also how a certificate is revoked: the device is disabled.
        return Err(Refusal::NotAuthorized);
    }
    match (&entry.psk_base64, &entry.certificate, auth) {
        // TLS-PSK: the handshake proved this device's key; no password is sent.
        (Some(_), _, TransportAuth::Psk(identity)) => {
            if *identity != connect.client_id {
                tracing::info!(%identity, client_id = %connect.client_id, "TLS-PSK identity and ClientId differ");
                return Err(Refusal::NotAuthorized);
            }
        }
        (Some(psk), _, _) => {
            let username = connect.username.as_deref().ok_or(Refusal::BadCredentials)?;
            let password = connect.password.as_deref().ok_or(Refusal::BadCredentials)?;
            verify_key_device(
                &connect.client_id,
                username,
                password,
                psk.expose_secret(),
                unix_now(),
            )
            .map_err(|err| match err {
                AuthError::BadClientId(_) => Refusal::ClientId,
                AuthError::BadCredentials(_) => Refusal::BadCredentials,
                AuthError::NotAuthorized(_) => Refusal::NotAuthorized,
            })?;
        }
        // A certificate device: its client certificate, not a password.
        (None, Some(registered), TransportAuth::Certificate(chain)) => {
            crate::cert_auth::verify(
                &connect.client_id,
                chain,
                registered,
                rustls::pki_types::UnixTime::now(),
            )
            .map_err(|refusal| {
                tracing::info!(client_id = %connect.client_id, %refusal, "client certificate refused");
                Refusal::NotAuthorized
            })?;
        }
        (None, _, _) => return Err(Refusal::NotAuthorized),
    }
    // Tencent: one successful CONNECT per device per interval (5 s by default).
    if !broker.connect_allowed(&connect.client_id, broker.settings.device_connect_interval) {
        return Err(Refusal::RateLimited);
    }
    let permissions = DevicePermissions::for_device(&device, &entry.classes);
    // Tencent devices use QoS 0 and 1.
    Ok((
        Some(device),
        Permissions::Device(permissions),
        QoS::AtLeastOnce,
    ))
}

/// The will, checked like a PUBLISH: a valid topic name the client may publish to, at a
/// QoS it may use.
fn check_will(
    connect: &Connect,
    permissions: &Permissions,
    max_qos: QoS,
) -> Result<Option<super::Will>, Refusal> {
    let Some(raw) = &connect.will else {
        return Ok(None);
    };
    let topic = eddy_core::Topic::parse(&raw.topic).map_err(|_| Refusal::Will)?;
    if super::core_qos(raw.qos) > max_qos || !permissions.may_publish(&topic) {
        return Err(Refusal::Will);
    }
    Ok(Some(super::Will {
        message: eddy_core::Message {
            topic,
            payload: raw.payload.clone(),
            qos: super::core_qos(raw.qos),
            retain: raw.retain,
            publisher: connect.client_id.clone(),
            received_at_ms: 0,
            properties: None,
        },
        properties: raw.properties.clone(),
        delay: std::time::Duration::from_secs(u64::from(raw.delay_secs)),
    }))
}
