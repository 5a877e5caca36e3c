//! One client connection: handshake, authentication, then a reader and a writer task.
//!
//! The reader decodes packets, checks them against the device's permissions, and routes
//! PUBLISHes; it waits when a subscriber's mailbox is full (back-pressure). The writer owns
//! the socket's write half and drains the connection's own mailbox: acks from the reader
//! and messages routed from other clients, coalesced into one flush per burst. Keeping the
//! two apart means two clients publishing to each other can never deadlock.

mod handshake;
mod reader;
mod writer;

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use eddy_core::{DeviceId, Message, QoS};
use futures::{SinkExt as _, StreamExt as _};
use rmqtt_codec::types::QoS as WireQoS;
use rmqtt_codec::version::VersionCodec;
use rmqtt_codec::{MqttCodec, MqttPacket, v3, v5};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;

use crate::acl::DevicePermissions;
use crate::router::{ClientHandle, Subscriptions};
use crate::{Broker, StatusEvent};

use handshake::handshake;
use reader::read_loop;
use writer::write_loop;

pub(super) type Io = Framed<TcpStream, MqttCodec>;

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
pub(super) struct Admitted {
    pub(super) v5: bool,
    pub(super) client_id: Arc<str>,
    pub(super) device: DeviceId,
    pub(super) permissions: DevicePermissions,
    pub(super) keep_alive: u16,
    /// This connection's subscriptions, shared with its router handle so that a newer
    /// connection with the same ClientId can clear them.
    pub(super) subscriptions: Subscriptions,
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
    broker.metrics.connections.inc();

    let (sink, stream) = io.split();
    let writer = tokio::spawn(write_loop(broker.clone(), sink, inbox, admitted.v5));
    let reason = read_loop(&broker, stream, &mailbox, kick_rx, &admitted).await;
    let _ = mailbox.send(ToWriter::Close(reason)).await;
    drop(mailbox);
    let _ = writer.await;

    // A connection replaced by a newer one with the same ClientId leaves the newer one's
    // subscriptions and online state alone.
    broker
        .router
        .detach(&admitted.client_id, connection_id, offline);
    broker.metrics.connections.dec();
    tracing::info!(%peer, device = %admitted.device, "device disconnected");
}
