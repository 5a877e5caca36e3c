//! One client connection: handshake, authentication, then a reader and a writer task.
//!
//! The reader decodes packets, checks them against the device's permissions, and routes
//! PUBLISHes; it waits when a subscriber's mailbox is full (back-pressure). The writer owns
//! the socket's write half and drains the connection's own mailbox: acks from the reader
//! and messages routed from other clients, coalesced into one flush per burst. Keeping the
//! two apart means two clients publishing to each other can never deadlock.

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use eddy_core::secret::ExposeSecret as _;
use eddy_core::time::{unix_now, unix_now_ms};
use eddy_core::{DeviceId, Message, QoS, Topic, TopicFilter};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, StreamExt as _};
use rmqtt_codec::types::QoS as WireQoS;
use rmqtt_codec::version::{ProtocolVersion, VersionCodec};
use rmqtt_codec::{MqttCodec, MqttPacket, v3, v5};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;

use crate::acl::DevicePermissions;
use crate::device_auth::{AuthError, verify_key_device};
use crate::router::{ClientHandle, Subscriptions};
use crate::{Broker, ConnectionError, StatusEvent};

type Io = Framed<TcpStream, MqttCodec>;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// What the writer task is asked to do.
#[derive(Debug)]
pub(crate) enum ToWriter {
    /// An ack or other reply, already in the connection's protocol version.
    Packet(MqttPacket),
    /// A routed message, delivered at `qos` (the lower of publish and subscription QoS).
    Deliver { message: Arc<Message>, qos: QoS },
    /// The client acknowledged QoS 1 delivery `packet_id`.
    Acked(NonZeroU16),
    /// Close the connection, telling a v5 client why.
    Close(Option<v5::DisconnectReasonCode>),
}

fn wire_qos(qos: QoS) -> WireQoS {
    match qos {
        QoS::AtMostOnce => WireQoS::AtMostOnce,
        QoS::AtLeastOnce => WireQoS::AtLeastOnce,
        QoS::ExactlyOnce => WireQoS::ExactlyOnce,
    }
}

fn core_qos(qos: WireQoS) -> QoS {
    match qos {
        WireQoS::AtMostOnce => QoS::AtMostOnce,
        WireQoS::AtLeastOnce => QoS::AtLeastOnce,
        WireQoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// The CONNECT fields the broker uses, from either protocol version.
struct Connect {
    v5: bool,
    client_id: String,
    username: Option<String>,
    password: Option<Bytes>,
    keep_alive: u16,
}

/// Serves one accepted TCP connection to its end.
pub(crate) async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut io: Io = Framed::new(stream, MqttCodec::Version(VersionCodec));
    let deadline = broker.settings.connect_timeout;
    match tokio::time::timeout(deadline, handshake(&broker, &mut io, peer)).await {
        Ok(Ok(Some(admitted))) => run(broker, io, peer, admitted).await,
        Ok(Ok(None)) => {}
        Ok(Err(err)) => tracing::debug!(%peer, error = %err, "connection refused"),
        Err(_) => tracing::debug!(%peer, "no CONNECT within {deadline:?}; closed"),
    }
}

/// An authenticated client, ready for its session.
struct Admitted {
    v5: bool,
    client_id: Arc<str>,
    device: DeviceId,
    permissions: DevicePermissions,
    keep_alive: u16,
    /// This connection's subscriptions, shared with its router handle so that a newer
    /// connection with the same ClientId can clear them.
    subscriptions: Subscriptions,
}

async fn handshake(
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

async fn run(broker: Arc<Broker>, mut io: Io, peer: SocketAddr, admitted: Admitted) {
    let connection_id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
    let (mailbox, inbox) = mpsc::channel(broker.settings.outgoing_queue);
    let (kick_tx, kick_rx) = oneshot::channel();
    let handle = ClientHandle {
        connection_id,
        mailbox: mailbox.clone(),
        kick: Arc::new(Mutex::new(Some(kick_tx))),
        subscriptions: admitted.subscriptions.clone(),
    };
    let (recorded_tx, recorded) = oneshot::channel();
    let previous = broker
        .router
        .attach(admitted.client_id.clone(), handle, || {
            broker.record_status(StatusEvent {
                device: admitted.device.clone(),
                online_from: Some(peer.ip().to_string()),
                recorded: Some(recorded_tx),
            });
        });
    if let Some(previous) = previous {
        tracing::info!(client_id = %admitted.client_id, "same ClientId connected again: kicking the older connection");
        let kick = previous
            .kick
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(kick) = kick {
            let _ = kick.send(());
        }
    }

    let ack = if admitted.v5 {
        MqttPacket::V5(v5::Packet::ConnectAck(Box::new(v5::ConnectAck {
            max_packet_size: Some(broker.settings.max_packet_bytes()),
            // Tencent devices use QoS 0 and 1.
            max_qos: rmqtt_codec::types::QoS::AtLeastOnce,
            retain_available: false,
            wildcard_subscription_available: true,
            shared_subscription_available: false,
            subscription_identifiers_available: false,
            ..Default::default()
        })))
    } else {
        MqttPacket::V3(v3::Packet::ConnectAck(v3::ConnectAck {
            session_present: false,
            return_code: v3::ConnectAckReason::ConnectionAccepted,
        }))
    };
    // The CONNACK goes out once the registry says "online", so whoever sees the device
    // connected also sees it online.
    let _ = recorded.await;
    let offline = || {
        broker.record_status(StatusEvent {
            device: admitted.device.clone(),
            online_from: None,
            recorded: None,
        });
    };
    if io.send(ack).await.is_err() {
        broker
            .router
            .detach(&admitted.client_id, connection_id, offline);
        return;
    }
    tracing::info!(%peer, device = %admitted.device, v5 = admitted.v5, "device connected");

    let (sink, stream) = io.split();
    let writer = tokio::spawn(write_loop(sink, inbox, admitted.v5));
    let reason = read_loop(&broker, stream, &mailbox, kick_rx, &admitted).await;
    let _ = mailbox.send(ToWriter::Close(reason)).await;
    drop(mailbox);
    let _ = writer.await;

    // A connection replaced by a newer one with the same ClientId leaves the newer one's
    // subscriptions and online state alone.
    broker
        .router
        .detach(&admitted.client_id, connection_id, offline);
    tracing::info!(%peer, device = %admitted.device, "device disconnected");
}

/// Decoded, protocol-neutral inbound packets.
enum Inbound {
    Publish {
        topic: ByteString,
        payload: Bytes,
        qos: WireQoS,
        retain: bool,
        packet_id: Option<NonZeroU16>,
    },
    PubAck(NonZeroU16),
    Subscribe {
        packet_id: NonZeroU16,
        filters: Vec<(ByteString, WireQoS)>,
    },
    Unsubscribe {
        packet_id: NonZeroU16,
        filters: Vec<ByteString>,
    },
    Ping,
    Disconnect,
    Other(&'static str),
}

fn inbound(packet: MqttPacket) -> Inbound {
    match packet {
        MqttPacket::V3(p) => match p {
            v3::Packet::Publish(p) => Inbound::Publish {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos,
                retain: p.retain,
                packet_id: p.packet_id,
            },
            v3::Packet::PublishAck { packet_id } => Inbound::PubAck(packet_id),
            v3::Packet::Subscribe {
                packet_id,
                topic_filters,
            } => Inbound::Subscribe {
                packet_id,
                filters: topic_filters,
            },
            v3::Packet::Unsubscribe {
                packet_id,
                topic_filters,
            } => Inbound::Unsubscribe {
                packet_id,
                filters: topic_filters,
            },
            v3::Packet::PingRequest => Inbound::Ping,
            v3::Packet::Disconnect => Inbound::Disconnect,
            _ => Inbound::Other("unexpected packet"),
        },
        MqttPacket::V5(p) => match p {
            v5::Packet::Publish(p) => Inbound::Publish {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos,
                retain: p.retain,
                packet_id: p.packet_id,
            },
            v5::Packet::PublishAck(a) => Inbound::PubAck(a.packet_id),
            v5::Packet::Subscribe(s) => Inbound::Subscribe {
                packet_id: s.packet_id,
                filters: s
                    .topic_filters
                    .into_iter()
                    .map(|(f, o)| (f, o.qos))
                    .collect(),
            },
            v5::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
                packet_id: u.packet_id,
                filters: u.topic_filters,
            },
            v5::Packet::PingRequest => Inbound::Ping,
            v5::Packet::Disconnect(_) => Inbound::Disconnect,
            _ => Inbound::Other("unexpected packet"),
        },
        MqttPacket::Version(_) => Inbound::Other("unexpected packet"),
    }
}

/// Reads until the client leaves, is kicked, times out or breaks the protocol; returns the
/// DISCONNECT reason a v5 client should get.
async fn read_loop(
    broker: &Broker,
    mut stream: SplitStream<Io>,
    mailbox: &mpsc::Sender<ToWriter>,
    mut kick: oneshot::Receiver<()>,
    client: &Admitted,
) -> Option<v5::DisconnectReasonCode> {
    // Tencent: disconnect after 1.5 × keepalive of silence; 0 disables the check.
    let idle_limit =
        (client.keep_alive > 0).then(|| Duration::from_millis(u64::from(client.keep_alive) * 1500));
    loop {
        let next = async {
            match idle_limit {
                Some(limit) => tokio::time::timeout(limit, stream.next()).await.ok(),
                None => Some(stream.next().await),
            }
        };
        let item = tokio::select! {
            _ = &mut kick => return Some(v5::DisconnectReasonCode::SessionTakenOver),
            item = next => item,
        };
        let packet = match item {
            None => {
                tracing::debug!(client_id = %client.client_id, "keepalive expired");
                return Some(v5::DisconnectReasonCode::KeepAliveTimeout);
            }
            Some(None) => return None,
            Some(Some(Err(err))) => {
                tracing::info!(client_id = %client.client_id, error = ?err, "malformed packet: closing");
                return Some(v5::ToReasonCode::to_reason_code(&err));
            }
            Some(Some(Ok((packet, _)))) => packet,
        };
        let reply = match inbound(packet) {
            Inbound::Publish {
                topic,
                payload,
                qos,
                retain,
                packet_id,
            } => publish(broker, client, &topic, payload, qos, retain, packet_id).await,
            Inbound::PubAck(id) => {
                let _ = mailbox.send(ToWriter::Acked(id)).await;
                None
            }
            Inbound::Subscribe { packet_id, filters } => {
                Some(subscribe(broker, client, packet_id, &filters))
            }
            Inbound::Unsubscribe { packet_id, filters } => {
                for filter in &filters {
                    if let Ok(filter) = TopicFilter::parse(filter) {
                        broker.router.unsubscribe(&client.client_id, &filter);
                        client.subscriptions.remove(&filter);
                    }
                }
                Some(if client.v5 {
                    MqttPacket::V5(v5::Packet::UnsubscribeAck(v5::UnsubscribeAck {
                        packet_id,
                        properties: Vec::new(),
                        reason_string: None,
                        status: filters
                            .iter()
                            .map(|_| v5::UnsubscribeAckReason::Success)
                            .collect(),
                    }))
                } else {
                    MqttPacket::V3(v3::Packet::UnsubscribeAck { packet_id })
                })
            }
            Inbound::Ping => Some(if client.v5 {
                MqttPacket::V5(v5::Packet::PingResponse)
            } else {
                MqttPacket::V3(v3::Packet::PingResponse)
            }),
            Inbound::Disconnect => return None,
            Inbound::Other(what) => {
                tracing::info!(client_id = %client.client_id, what, "protocol violation: closing");
                return Some(v5::DisconnectReasonCode::ProtocolError);
            }
        };
        if let Some(reply) = reply
            && mailbox.send(ToWriter::Packet(reply)).await.is_err()
        {
            return None;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn publish(
    broker: &Broker,
    client: &Admitted,
    topic: &str,
    payload: Bytes,
    qos: WireQoS,
    retain: bool,
    packet_id: Option<NonZeroU16>,
) -> Option<MqttPacket> {
    let allowed = Topic::parse(topic)
        .ok()
        .filter(|t| client.permissions.may_publish(t));
    let ack = |refused: bool| -> Option<MqttPacket> {
        let packet_id = packet_id?;
        match qos {
            WireQoS::AtMostOnce => None,
            // QoS 2 from devices is refused below; Tencent devices use QoS 0 and 1.
            WireQoS::AtLeastOnce | WireQoS::ExactlyOnce => Some(if client.v5 {
                MqttPacket::V5(v5::Packet::PublishAck(v5::PublishAck {
                    packet_id,
                    reason_code: if refused {
                        v5::PublishAckReason::NotAuthorized
                    } else {
                        v5::PublishAckReason::Success
                    },
                    properties: Vec::new(),
                    reason_string: None,
                }))
            } else {
                // MQTT 3 has no refusal in PUBACK: ack so the device does not resend
                // forever; the refusal is logged and counted.
                MqttPacket::V3(v3::Packet::PublishAck { packet_id })
            }),
        }
    };
    let Some(topic) = allowed else {
        tracing::info!(client_id = %client.client_id, topic, "PUBLISH refused by the topic ACL");
        broker.stats.publish_refused.fetch_add(1, Ordering::Relaxed);
        return ack(true);
    };
    if qos == WireQoS::ExactlyOnce {
        tracing::info!(client_id = %client.client_id, "QoS 2 is not served to devices yet");
        broker.stats.publish_refused.fetch_add(1, Ordering::Relaxed);
        return ack(true);
    }
    let message = Arc::new(Message {
        topic,
        payload,
        qos: core_qos(qos),
        retain,
        publisher: client.client_id.to_string(),
        received_at_ms: unix_now_ms(),
    });
    broker.route(&message).await;
    ack(false)
}

fn subscribe(
    broker: &Broker,
    client: &Admitted,
    packet_id: NonZeroU16,
    filters: &[(ByteString, WireQoS)],
) -> MqttPacket {
    let mut granted = Vec::with_capacity(filters.len());
    for (raw, qos) in filters {
        let filter = TopicFilter::parse(raw)
            .ok()
            .filter(|f| client.permissions.may_subscribe(f));
        // Tencent devices get at most QoS 1.
        let qos = (*qos).min(WireQoS::AtLeastOnce);
        match filter {
            Some(filter) => {
                broker
                    .router
                    .subscribe(&client.client_id, &filter, core_qos(qos));
                client.subscriptions.insert(filter);
                granted.push(Some(qos));
            }
            None => {
                tracing::info!(client_id = %client.client_id, filter = %raw, "SUBSCRIBE refused by the topic ACL");
                granted.push(None);
            }
        }
    }
    if client.v5 {
        MqttPacket::V5(v5::Packet::SubscribeAck(v5::SubscribeAck {
            packet_id,
            properties: Vec::new(),
            reason_string: None,
            status: granted
                .into_iter()
                .map(|g| match g {
                    Some(WireQoS::AtMostOnce) => v5::SubscribeAckReason::GrantedQos0,
                    Some(_) => v5::SubscribeAckReason::GrantedQos1,
                    None => v5::SubscribeAckReason::NotAuthorized,
                })
                .collect(),
        }))
    } else {
        MqttPacket::V3(v3::Packet::SubscribeAck {
            packet_id,
            status: granted
                .into_iter()
                .map(|g| match g {
                    Some(q) => v3::SubscribeReturnCode::Success(q),
                    None => v3::SubscribeReturnCode::Failure,
                })
                .collect(),
        })
    }
}

/// Packet ids for QoS 1 deliveries, skipping ids still in flight.
struct PacketIds {
    next: u16,
    in_flight: std::collections::HashSet<u16>,
}

impl PacketIds {
    fn allocate(&mut self) -> Option<NonZeroU16> {
        for _ in 0..u16::MAX {
            self.next = self.next.wrapping_add(1).max(1);
            if self.in_flight.insert(self.next) {
                return NonZeroU16::new(self.next);
            }
        }
        None
    }
}

async fn write_loop(
    mut sink: SplitSink<Io, MqttPacket>,
    mut inbox: mpsc::Receiver<ToWriter>,
    v5: bool,
) {
    let mut ids = PacketIds {
        next: 0,
        in_flight: std::collections::HashSet::new(),
    };
    while let Some(first) = inbox.recv().await {
        let mut next = Some(first);
        while let Some(command) = next {
            let packet = match command {
                ToWriter::Packet(p) => Some(p),
                ToWriter::Acked(id) => {
                    ids.in_flight.remove(&id.get());
                    None
                }
                ToWriter::Deliver { message, qos } => {
                    let packet_id = match qos {
                        QoS::AtMostOnce => None,
                        _ => ids.allocate(),
                    };
                    let publish = rmqtt_codec::types::Publish {
                        dup: false,
                        retain: false,
                        qos: wire_qos(if packet_id.is_some() {
                            qos
                        } else {
                            QoS::AtMostOnce
                        }),
                        topic: ByteString::from(message.topic.as_str()),
                        packet_id,
                        payload: message.payload.clone(),
                        properties: v5.then(v5::PublishProperties::default),
                    };
                    Some(if v5 {
                        MqttPacket::V5(v5::Packet::Publish(Box::new(publish)))
                    } else {
                        MqttPacket::V3(v3::Packet::Publish(Box::new(publish)))
                    })
                }
                ToWriter::Close(reason) => {
                    if v5 && let Some(reason_code) = reason {
                        let _ = sink
                            .feed(MqttPacket::V5(v5::Packet::Disconnect(v5::Disconnect {
                                reason_code,
                                ..Default::default()
                            })))
                            .await;
                    }
                    let _ = sink.flush().await;
                    let _ = sink.close().await;
                    return;
                }
            };
            if let Some(packet) = packet
                && sink.feed(packet).await.is_err()
            {
                return;
            }
            next = inbox.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}
