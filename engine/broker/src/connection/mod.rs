//! One client connection: handshake, authentication, then a reader and a writer task.
//!
//! The reader decodes packets, checks them against the device's permissions, and routes
//! PUBLISHes; it waits when a subscriber's mailbox is full (back-pressure). The writer owns
//! the socket's write half and drains the connection's own mailbox: acks from the reader
//! and messages routed from other clients, coalesced into one flush per burst. Keeping the
//! two apart means two clients publishing to each other can never deadlock.

mod handshake;
mod properties;
mod reader;
mod writer;

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_core::{DeviceId, Message, QoS};
use futures::{SinkExt as _, StreamExt as _};
use rmqtt_codec::types::QoS as WireQoS;
use rmqtt_codec::version::VersionCodec;
use rmqtt_codec::{MqttCodec, MqttPacket, v3, v5};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;

use crate::acl::DevicePermissions;
use crate::clients::ClientPermissions;
use crate::events::ClientEventKind;
use crate::router::{ClientHandle, Detached, Subscriptions};
use crate::session::Persistent;
use crate::{Broker, StatusEvent};

use handshake::handshake;
use reader::read_loop;
use writer::write_loop;

pub(super) type Io = Framed<Box<dyn crate::transport::Stream>, MqttCodec>;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// What the writer task is asked to do.
#[derive(Debug)]
pub(crate) enum ToWriter {
    /// An ack or other reply, already in the connection's protocol version.
    Packet(MqttPacket),
    /// A routed message, delivered at `qos` (the lower of publish and subscription QoS);
    /// `seq` is its entry in the session's durable queue, removed when acknowledged.
    Deliver {
        message: Arc<Message>,
        qos: QoS,
        seq: Option<u64>,
        /// Sent with RETAIN = 1: a retained message for a new subscription, or one
        /// published retained to a retain-as-published subscription.
        retain: bool,
        /// MQTT 5 Subscription Identifiers of the matching subscriptions.
        subscription_ids: Vec<std::num::NonZeroU32>,
    },
    /// The client acknowledged QoS 1 delivery `packet_id` (PUBACK).
    Acked(NonZeroU16),
    /// The client received QoS 2 delivery `packet_id` (PUBREC): release it.
    Received(NonZeroU16),
    /// The client completed QoS 2 delivery `packet_id` (PUBCOMP).
    Completed(NonZeroU16),
    /// Close the connection, telling a v5 client why.
    Close(Option<v5::DisconnectReasonCode>),
}

/// The second half of QoS 2: PUBREL (`release`, broker → client) or PUBCOMP (answering
/// the client's PUBREL); `known` is false when `packet_id` names no QoS 2 exchange.
pub(super) fn ack2(v5: bool, packet_id: NonZeroU16, known: bool, release: bool) -> MqttPacket {
    if v5 {
        let ack = v5::PublishAck2 {
            packet_id,
            reason_code: if known {
                v5::PublishAck2Reason::Success
            } else {
                v5::PublishAck2Reason::PacketIdNotFound
            },
            properties: Vec::new(),
            reason_string: None,
        };
        MqttPacket::V5(if release {
            v5::Packet::PublishRelease(ack)
        } else {
            v5::Packet::PublishComplete(ack)
        })
    } else if release {
        MqttPacket::V3(v3::Packet::PublishRelease { packet_id })
    } else {
        MqttPacket::V3(v3::Packet::PublishComplete { packet_id })
    }
}

/// A PUBACK or PUBREC, and the commit its message must reach first.
pub(super) struct Ack {
    pub(super) durable: Option<eddy_queue::Pending>,
    pub(super) packet: MqttPacket,
}

/// Sends a connection's PUBACKs / PUBRECs in the order of their PUBLISHes, each once its
/// message is durable. If a commit fails, the connection is closed with that ack and every
/// later one unsent: the client sends those PUBLISHes again on its next connection.
async fn acker(mut acks: mpsc::Receiver<Ack>, mailbox: mpsc::Sender<ToWriter>) {
    while let Some(ack) = acks.recv().await {
        if let Some(durable) = ack.durable
            && let Err(err) = durable.wait().await
        {
            tracing::error!(error = %err, "storing a routed message failed: closing without its ack");
            let _ = mailbox
                .send(ToWriter::Close(Some(
                    v5::DisconnectReasonCode::UnspecifiedError,
                )))
                .await;
            return;
        }
        if mailbox.send(ToWriter::Packet(ack.packet)).await.is_err() {
            return;
        }
    }
}

pub(super) fn wire_qos(qos: QoS) -> WireQoS {
    match qos {
        QoS::AtMostOnce => WireQoS::AtMostOnce,
        QoS::AtLeastOnce => WireQoS::AtLeastOnce,
        QoS::ExactlyOnce => WireQoS::ExactlyOnce,
    }
}

pub(super) fn core_qos(qos: WireQoS) -> QoS {
    match qos {
        WireQoS::AtMostOnce => QoS::AtMostOnce,
        WireQoS::AtLeastOnce => QoS::AtLeastOnce,
        WireQoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// Serves one accepted connection (its transport handshake done) to its end.
pub(crate) async fn serve(broker: Arc<Broker>, accepted: crate::transport::Accepted) {
    let crate::transport::Accepted {
        stream, peer, auth, ..
    } = accepted;
    let mut io: Io = Framed::new(stream, MqttCodec::Version(VersionCodec));
    let deadline = broker.settings.connect_timeout;
    match tokio::time::timeout(deadline, handshake(&broker, &mut io, peer, &auth)).await {
        Ok(Ok(Some(admitted))) => run(broker, io, peer, admitted).await,
        Ok(Ok(None)) => {}
        Ok(Err(err)) => tracing::debug!(%peer, error = %err, "connection refused"),
        Err(_) => tracing::debug!(%peer, "no CONNECT within {deadline:?}; closed"),
    }
}

/// An authenticated client, ready for its session.
pub(super) struct Admitted {
    pub(super) v5: bool,
    pub(super) client_id: Arc<str>,
    /// The Tencent device, or `None` for a generic client (open-broker mode). Only
    /// devices have registry status and Tencent's limits.
    pub(super) device: Option<DeviceId>,
    pub(super) permissions: Permissions,
    pub(super) keep_alive: u16,
    /// The keepalive the CONNACK imposes on an MQTT 5 client that asked for more.
    pub(super) server_keep_alive: Option<u16>,
    /// The highest QoS it may publish and be granted (devices: 1, Tencent has no QoS 2).
    pub(super) max_qos: QoS,
    /// The broker chose its ClientId (the CONNACK tells an MQTT 5 client which).
    pub(super) assigned_client_id: bool,
    /// Its rate, subscription and topic limits.
    pub(super) limits: crate::settings::Limits,
    pub(super) clean_start: bool,
    /// How long its session outlives the connection; zero for a clean session.
    pub(super) session_expiry: Duration,
    /// Its session's subscriptions (set once the session is attached).
    pub(super) subscriptions: Subscriptions,
    /// Its session's persistence, when persistent (set once attached).
    pub(super) persistent: Option<Arc<Persistent>>,
    /// Published if the connection ends without a normal DISCONNECT.
    pub(super) will: Option<Will>,
    /// The client's MQTT 5 Receive Maximum (65,535 for MQTT 3).
    pub(super) receive_max: u16,
    /// The client's MQTT 5 Maximum Packet Size.
    pub(super) max_packet_size: Option<u32>,
    /// The address it connected from, for the rule engine's `clientip()`.
    pub(super) peer_ip: std::net::IpAddr,
}

/// What an admitted client may publish and subscribe to.
pub(super) enum Permissions {
    Device(DevicePermissions),
    Client(ClientPermissions),
}

impl Permissions {
    pub(super) fn may_publish(&self, topic: &eddy_core::Topic) -> bool {
        match self {
            Self::Device(p) => p.may_publish(topic),
            Self::Client(p) => p.may_publish(topic),
        }
    }

    pub(super) fn may_subscribe(&self, filter: &eddy_core::TopicFilter) -> bool {
        match self {
            Self::Device(p) => p.may_subscribe(filter),
            Self::Client(p) => p.may_subscribe(filter),
        }
    }
}

/// A will message (already checked against the client's permissions), and how long after
/// the connection's end it is published (MQTT 5 Will Delay Interval).
pub(super) struct Will {
    pub(super) message: Message,
    pub(super) delay: Duration,
    /// Its MQTT 5 properties; the expiry interval runs from when it is published.
    pub(super) properties: Option<v5::PublishProperties>,
}

async fn run(broker: Arc<Broker>, mut io: Io, peer: SocketAddr, mut admitted: Admitted) {
    let connection_id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
    let (mailbox, inbox) = mpsc::channel(broker.settings.outgoing_queue);
    let (kick_tx, kick_rx) = oneshot::channel();
    let handle = ClientHandle {
        connection_id,
        mailbox: mailbox.clone(),
        kick: Arc::new(Mutex::new(Some(kick_tx))),
    };
    let wants_persistent = (!admitted.session_expiry.is_zero()).then(|| {
        Arc::new(Persistent::new(
            admitted.session_expiry,
            broker.settings.offline_queue_max,
        ))
    });
    let (recorded_tx, recorded) = oneshot::channel();
    let attached = broker.router.attach(
        admitted.client_id.clone(),
        handle,
        admitted.clean_start,
        wants_persistent,
        || {
            broker.events.emit(
                ClientEventKind::Connected,
                &admitted.client_id,
                admitted.device.as_ref(),
                peer.ip(),
                "",
            );
            match &admitted.device {
                Some(device) => broker.record_status(StatusEvent {
                    device: device.clone(),
                    online_from: Some(peer.ip().to_string()),
                    recorded: Some(recorded_tx),
                }),
                // A generic client has no registry entry: nothing to wait for.
                None => drop(recorded_tx.send(())),
            }
        },
    );
    if let Some(previous) = &attached.previous {
        tracing::info!(client_id = %admitted.client_id, "same ClientId connected again: kicking the older connection");
        let kick = previous
            .kick
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(kick) = kick {
            let _ = kick.send(v5::DisconnectReasonCode::SessionTakenOver);
        }
    }
    admitted.subscriptions = attached.subscriptions;
    admitted.persistent = attached.persistent;
    let resumed = attached.resumed;
    let discarded = attached.discarded.is_some();
    if let Some(old) = &attached.discarded {
        broker.forget_queued(old);
    }

    let offline = || {
        broker.events.emit(
            ClientEventKind::Disconnected,
            &admitted.client_id,
            admitted.device.as_ref(),
            peer.ip(),
            "",
        );
        if let Some(device) = &admitted.device {
            broker.record_status(StatusEvent {
                device: device.clone(),
                online_from: None,
                recorded: None,
            });
            // A gateway's sub-devices go offline with it.
            for sub in broker.proxies.take_gateway(&admitted.client_id) {
                broker.record_status(StatusEvent {
                    device: sub,
                    online_from: None,
                    recorded: None,
                });
            }
        }
    };
    // A session that did not resume starts with nothing on disk; a resumed one sends
    // again whatever its queue still holds.
    let replay = match session_start(&broker, &admitted, resumed, discarded).await {
        Ok(replay) => replay,
        Err(err) => {
            tracing::error!(error = %err, client_id = %admitted.client_id, "opening the session failed");
            let _ = recorded.await;
            broker
                .router
                .detach(&admitted.client_id, connection_id, offline);
            return;
        }
    };

    let ack = if admitted.v5 {
        MqttPacket::V5(v5::Packet::ConnectAck(Box::new(v5::ConnectAck {
            session_present: resumed,
            assigned_client_id: admitted
                .assigned_client_id
                .then(|| bytestring::ByteString::from(&*admitted.client_id)),
            session_expiry_interval_secs: admitted
                .persistent
                .as_ref()
                .map(|p| u32::try_from(p.expiry().as_secs()).unwrap_or(u32::MAX)),
            max_packet_size: Some(if admitted.device.is_some() {
                broker.settings.max_packet_bytes()
            } else {
                broker.settings.clients.max_packet_bytes
            }),
            topic_alias_max: properties::TOPIC_ALIAS_MAX,
            server_keepalive_sec: admitted.server_keep_alive,
            max_qos: wire_qos(admitted.max_qos),
            retain_available: true,
            wildcard_subscription_available: true,
            shared_subscription_available: true,
            subscription_identifiers_available: false,
            ..Default::default()
        })))
    } else {
        MqttPacket::V3(v3::Packet::ConnectAck(v3::ConnectAck {
            session_present: resumed,
            return_code: v3::ConnectAckReason::ConnectionAccepted,
        }))
    };
    // The CONNACK goes out once the registry says "online", so whoever sees the device
    // connected also sees it online.
    let _ = recorded.await;
    if io.send(ack).await.is_err() {
        end_session(&broker, &admitted, connection_id, offline).await;
        return;
    }
    tracing::info!(%peer, client_id = %admitted.client_id, device = admitted.device.is_some(), v5 = admitted.v5, resumed, "client connected");
    broker.metrics.connections.inc();

    let (sink, stream) = io.split();
    let session = admitted
        .persistent
        .clone()
        .map(|p| (admitted.client_id.clone(), p));
    let writer = tokio::spawn(write_loop(
        broker.clone(),
        sink,
        inbox,
        writer::Peer {
            v5: admitted.v5,
            rate: admitted.limits.rate,
            receive_max: admitted.receive_max,
            max_packet_size: admitted.max_packet_size,
        },
        session,
        replay,
    ));
    let (acks, ack_inbox) = mpsc::channel(broker.settings.outgoing_queue);
    let acker = tokio::spawn(acker(ack_inbox, mailbox.clone()));
    let mut will_discarded = false;
    let reason = read_loop(
        &broker,
        stream,
        &mailbox,
        kick_rx,
        &admitted,
        &acks,
        &mut will_discarded,
    )
    .await;
    // The acks still waiting for their commits go out before the connection closes.
    drop(acks);
    let _ = acker.await;
    // The session lets go of this connection before the socket closes, so a client that
    // sees the close and connects again finds its session released (or ended), not
    // still held by this connection.
    end_session(&broker, &admitted, connection_id, offline).await;
    let _ = mailbox.send(ToWriter::Close(reason)).await;
    drop(mailbox);
    let _ = writer.await;

    if let Some(will) = admitted.will.take()
        && !will_discarded
    {
        publish_will(&broker, &admitted.client_id, connection_id, will);
    }
    broker.metrics.connections.dec();
    tracing::info!(%peer, client_id = %admitted.client_id, "client disconnected");
}

/// Prepares a session's durable side as its connection starts; returns the queued
/// messages to send again, oldest first.
async fn session_start(
    broker: &Broker,
    admitted: &Admitted,
    resumed: bool,
    discarded: bool,
) -> Result<Vec<(u64, Arc<Message>)>, eddy_queue::QueueError> {
    let store = broker.sessions();
    if discarded {
        // An earlier persistent session of this ClientId ended: its queue goes with it.
        store.delete(&admitted.client_id).await?;
    }
    let Some(persistent) = &admitted.persistent else {
        return Ok(Vec::new());
    };
    // A new session is on disk before its CONNACK; a resumed one only notes it is back.
    store
        .save(
            &admitted.client_id,
            &admitted.subscriptions.snapshot(),
            persistent.expiry().as_secs(),
            None,
            if resumed {
                eddy_queue::Durability::Buffered
            } else {
                eddy_queue::Durability::Sync
            },
        )
        .await?;
    if !resumed {
        return Ok(Vec::new());
    }
    let ttl = i64::try_from(broker.settings.offline_message_ttl.as_millis()).unwrap_or(i64::MAX);
    let not_before = eddy_core::time::unix_now_ms().saturating_sub(ttl);
    let (queued, expired) = store.queued(&admitted.client_id, not_before).await?;
    for _ in 0..expired {
        broker.dropped("expired");
    }
    let before = std::mem::replace(&mut *persistent.queued(), queued.len());
    let to_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    broker
        .metrics
        .queued
        .inc_by(to_i64(queued.len()) - to_i64(before));
    Ok(queued
        .into_iter()
        .map(|(seq, message)| (seq, Arc::new(message)))
        .collect())
}

/// Ends the connection's hold on its session: a clean session ends; a persistent one
/// records when it went offline (its expiry runs from then, across restarts).
async fn end_session(
    broker: &Broker,
    admitted: &Admitted,
    connection_id: u64,
    offline: impl FnOnce(),
) {
    // A connection replaced by a newer one with the same ClientId leaves the newer one's
    // session and online state alone.
    let detached = broker
        .router
        .detach(&admitted.client_id, connection_id, offline);
    if let Detached::Ended(Some(persistent)) = &detached {
        // A persistent session whose expiry became zero ends now, on disk too.
        broker.forget_queued(persistent);
        if let Err(err) = broker.sessions().delete(&admitted.client_id).await {
            tracing::error!(error = %err, client_id = %admitted.client_id, "deleting an ended session failed");
        }
    }
    if let Detached::Kept(persistent, subscriptions) = detached {
        let saved = broker
            .sessions()
            .save(
                &admitted.client_id,
                &subscriptions.snapshot(),
                persistent.expiry().as_secs(),
                Some(eddy_core::time::unix_now_ms()),
                eddy_queue::Durability::Buffered,
            )
            .await;
        if let Err(err) = saved {
            tracing::error!(error = %err, client_id = %admitted.client_id, "recording the session's end failed");
        }
    }
}

/// Publishes a will once its delay has passed, unless the client has connected again by
/// then (MQTT 5 §3.1.3.2.2). Runs on its own task so that the delay holds nothing up.
fn publish_will(broker: &Arc<Broker>, client_id: &Arc<str>, connection_id: u64, will: Will) {
    let broker = broker.clone();
    let client_id = client_id.clone();
    tokio::spawn(async move {
        if !will.delay.is_zero() {
            tokio::time::sleep(will.delay).await;
            if broker
                .router
                .connection_id(&client_id)
                .is_some_and(|current| current != connection_id)
            {
                tracing::debug!(%client_id, "reconnected within the will delay: will discarded");
                return;
            }
        }
        let mut message = will.message;
        message.received_at_ms = eddy_core::time::unix_now_ms();
        message.properties = will
            .properties
            .as_ref()
            .and_then(|p| properties::message_properties(p, message.received_at_ms));
        let message = Arc::new(message);
        tracing::info!(%client_id, topic = %message.topic, "publishing the will message");
        let stored = if message.retain {
            broker.retain(&message).await
        } else {
            Ok(())
        };
        if let Err(err) = stored.and(broker.route(&message).await) {
            tracing::error!(error = %err, %client_id, "publishing the will message failed");
        }
    });
}
