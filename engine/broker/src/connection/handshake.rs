//! The CONNECT handshake: protocol version, authentication, the refusing CONNACK.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use eddy_core::DeviceId;
use eddy_core::secret::ExposeSecret as _;
use eddy_core::time::unix_now;
use futures::{SinkExt as _, StreamExt as _};
use rmqtt_codec::version::ProtocolVersion;
use rmqtt_codec::{MqttCodec, MqttPacket, v3, v5};

use crate::acl::DevicePermissions;
use crate::device_auth::{AuthError, verify_key_device};
use crate::router::Subscriptions;
use crate::{Broker, ConnectionError};

use super::{Admitted, Io};

/// The CONNECT fields the broker uses, from either protocol version.
struct Connect {
    v5: bool,
    client_id: String,
    username: Option<String>,
    password: Option<Bytes>,
    keep_alive: u16,
}

pub(super) async fn handshake(
    broker: &Broker,
    io: &mut Io,
    peer: SocketAddr,
) -> Result<Option<Admitted>, ConnectionError> {
    let version = match io.next().await {
        Some(Ok((MqttPacket::Version(v), _))) => v,
        Some(Ok(_)) => return Err(ConnectionError::Protocol("expected a CONNECT".into())),
        Some(Err(err)) => return Err(ConnectionError::Decode(format!("{err:?}"))),
        None => return Ok(None),
    };
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
        },
        Some(Ok((MqttPacket::V5(v5::Packet::Connect(c)), _))) => Connect {
            v5: true,
            client_id: c.client_id.to_string(),
            username: c.username.map(|u| u.to_string()),
            password: c.password,
            keep_alive: c.keep_alive,
        },
        Some(Ok(_)) => return Err(ConnectionError::Protocol("expected a CONNECT".into())),
        Some(Err(err)) => return Err(ConnectionError::Decode(format!("{err:?}"))),
        None => return Ok(None),
    };
    match authenticate(broker, &connect).await {
        Ok((device, permissions)) => {
            if connect.keep_alive > broker.settings.keepalive_max_secs {
                send_connack(io, connect.v5, Refusal::BadKeepAlive).await?;
                return Err(ConnectionError::Refused(format!(
                    "keepalive {} s is over the {} s limit",
                    connect.keep_alive, broker.settings.keepalive_max_secs
                )));
            }
            Ok(Some(Admitted {
                v5: connect.v5,
                client_id: Arc::from(connect.client_id.as_str()),
                device,
                permissions,
                keep_alive: connect.keep_alive,
                subscriptions: Subscriptions::default(),
            }))
        }
        Err(refusal) => {
            tracing::info!(%peer, client_id = %connect.client_id, reason = ?refusal, "CONNECT refused");
            send_connack(io, connect.v5, refusal).await?;
            Ok(None)
        }
    }
}

/// Why a CONNECT is refused, by CONNACK code.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    ClientId,
    BadCredentials,
    NotAuthorized,
    Unavailable,
    BadKeepAlive,
}

async fn send_connack(io: &mut Io, v5: bool, refusal: Refusal) -> Result<(), ConnectionError> {
    let packet = if v5 {
        use v5::ConnectAckReason as R;
        let reason_code = match refusal {
            Refusal::ClientId => R::ClientIdentifierNotValid,
            Refusal::BadCredentials => R::BadUserNameOrPassword,
            Refusal::NotAuthorized => R::NotAuthorized,
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
            Refusal::NotAuthorized => R::NotAuthorized,
            Refusal::Unavailable | Refusal::BadKeepAlive => R::ServiceUnavailable,
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

async fn authenticate(
    broker: &Broker,
    connect: &Connect,
) -> Result<(DeviceId, DevicePermissions), Refusal> {
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
        return Err(Refusal::NotAuthorized);
    }
    let Some(psk) = &entry.psk_base64 else {
        // Certificate devices authenticate by their TLS client certificate (issue F).
        return Err(Refusal::NotAuthorized);
    };
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
    let permissions = DevicePermissions::for_device(&device, &entry.classes);
    Ok((device, permissions))
}
