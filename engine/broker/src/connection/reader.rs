//! The reader task: inbound packets, the topic ACL, routing, the replies.

use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use eddy_core::time::unix_now_ms;
use eddy_core::{Message, Topic, TopicFilter};
use futures::StreamExt as _;
use futures::stream::SplitStream;
use rmqtt_codec::types::QoS as WireQoS;
use rmqtt_codec::{MqttPacket, v3, v5};
use tokio::sync::{mpsc, oneshot};

use crate::Broker;
use crate::metrics::Reason;
use crate::settings::RateLimit;

use super::{Admitted, Io, ToWriter, core_qos};

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

/// Both protocol versions decode PUBLISH into the same type.
fn publish_in(p: rmqtt_codec::types::Publish) -> Inbound {
    Inbound::Publish {
        topic: p.topic,
        payload: p.payload,
        qos: p.qos,
        retain: p.retain,
        packet_id: p.packet_id,
    }
}

fn inbound(packet: MqttPacket) -> Inbound {
    match packet {
        MqttPacket::V3(p) => match p {
            v3::Packet::Publish(p) => publish_in(*p),
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
            v5::Packet::Publish(p) => publish_in(*p),
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
pub(super) async fn read_loop(
    broker: &Broker,
    mut stream: SplitStream<Io>,
    mailbox: &mpsc::Sender<ToWriter>,
    mut kick: oneshot::Receiver<()>,
    client: &Admitted,
) -> Option<v5::DisconnectReasonCode> {
    // Tencent: disconnect after 1.5 × keepalive of silence; 0 disables the check.
    let idle_limit =
        (client.keep_alive > 0).then(|| Duration::from_millis(u64::from(client.keep_alive) * 1500));
    let settings = &broker.settings;
    let mut publish_rate = RateLimit::new(settings.device_rate_per_sec, settings.device_burst);
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
            } => {
                // A topic name with wildcards or U+0000 (or empty, with no v5 alias) breaks
                // the protocol: the connection is closed (MQTT 3.1.1 §4.7.3, MQTT 5 0x90).
                let Ok(topic) = Topic::parse(&topic) else {
                    tracing::info!(client_id = %client.client_id, topic = %topic, "invalid PUBLISH topic name: closing");
                    return Some(v5::DisconnectReasonCode::TopicNameInvalid);
                };
                // Tencent devices have no QoS 2 (§11), and a PUBACK would be the wrong
                // answer to it: the connection is closed (MQTT 5: 0x9B, QoS not supported).
                if qos == WireQoS::ExactlyOnce {
                    tracing::info!(client_id = %client.client_id, "QoS 2 PUBLISH from a device: closing");
                    broker
                        .metrics
                        .publish_refused
                        .get_or_create(&Reason::of("qos2"))
                        .inc();
                    return Some(v5::DisconnectReasonCode::QosNotSupported);
                }
                let refusal = if !publish_rate.allow() {
                    Some(Refused::Rate)
                } else if !within_topic_limits(settings, topic.as_str()) {
                    Some(Refused::TopicLimits)
                } else if !client.permissions.may_publish(&topic) {
                    Some(Refused::Acl)
                } else {
                    None
                };
                match publish(
                    broker, client, topic, payload, qos, retain, packet_id, refusal,
                )
                .await
                {
                    Ok(reply) => reply,
                    // Not durable, so not acknowledged: closing makes the client send it
                    // again on its next connection.
                    Err(err) => {
                        tracing::error!(error = %err, client_id = %client.client_id, "storing a routed message failed: closing without PUBACK");
                        return Some(v5::DisconnectReasonCode::UnspecifiedError);
                    }
                }
            }
            Inbound::PubAck(id) => {
                let _ = mailbox.send(ToWriter::Acked(id)).await;
                None
            }
            Inbound::Subscribe { packet_id, filters } => {
                let reply = subscribe(broker, client, packet_id, &filters);
                // A persistent session's subscriptions are on disk before the SUBACK.
                if let Err(err) = save_subscriptions(broker, client).await {
                    tracing::error!(error = %err, client_id = %client.client_id, "saving the session's subscriptions failed: closing");
                    return Some(v5::DisconnectReasonCode::UnspecifiedError);
                }
                Some(reply)
            }
            Inbound::Unsubscribe { packet_id, filters } => {
                for filter in &filters {
                    if let Ok(filter) = TopicFilter::parse(filter) {
                        broker.router.unsubscribe(&client.client_id, &filter);
                        client.subscriptions.remove(&filter);
                    }
                }
                if let Err(err) = save_subscriptions(broker, client).await {
                    tracing::error!(error = %err, client_id = %client.client_id, "saving the session's subscriptions failed: closing");
                    return Some(v5::DisconnectReasonCode::UnspecifiedError);
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

/// Why a PUBLISH was not routed.
#[derive(Debug, Clone, Copy)]
enum Refused {
    /// Over the device's message rate.
    Rate,
    /// Longer or deeper than a device topic may be.
    TopicLimits,
    /// Not one of the device's publishable topics.
    Acl,
}

/// Tencent's limits on a device topic: length in bytes and number of `/`.
fn within_topic_limits(settings: &crate::BrokerSettings, topic: &str) -> bool {
    topic.len() <= settings.device_max_topic_bytes
        && topic.matches('/').count() <= settings.device_max_topic_slashes
}

#[allow(clippy::too_many_arguments)]
async fn publish(
    broker: &Broker,
    client: &Admitted,
    topic: Topic,
    payload: Bytes,
    qos: WireQoS,
    retain: bool,
    packet_id: Option<NonZeroU16>,
    refusal: Option<Refused>,
) -> Result<Option<MqttPacket>, eddy_queue::QueueError> {
    let ack = |refused: Option<Refused>| -> Option<MqttPacket> {
        let packet_id = packet_id?;
        match qos {
            WireQoS::AtMostOnce => None,
            // QoS 2 never gets here: the reader closes the connection on it.
            WireQoS::AtLeastOnce | WireQoS::ExactlyOnce => Some(if client.v5 {
                MqttPacket::V5(v5::Packet::PublishAck(v5::PublishAck {
                    packet_id,
                    reason_code: match refused {
                        None => v5::PublishAckReason::Success,
                        Some(Refused::Rate) => v5::PublishAckReason::QuotaExceeded,
                        Some(Refused::TopicLimits) => v5::PublishAckReason::TopicNameInvalid,
                        Some(Refused::Acl) => v5::PublishAckReason::NotAuthorized,
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
    if let Some(why) = refusal {
        tracing::info!(client_id = %client.client_id, %topic, reason = ?why, "PUBLISH refused");
        let reason = match why {
            Refused::Rate => "rate",
            Refused::TopicLimits => "topic_limits",
            Refused::Acl => "acl",
        };
        broker
            .metrics
            .publish_refused
            .get_or_create(&Reason::of(reason))
            .inc();
        return Ok(ack(refusal));
    }
    let message = Arc::new(Message {
        topic,
        payload,
        qos: core_qos(qos),
        retain,
        publisher: client.client_id.to_string(),
        received_at_ms: unix_now_ms(),
    });
    broker.route(&message).await?;
    Ok(ack(None))
}

/// Writes a persistent session's subscriptions to disk (a clean session has none there).
async fn save_subscriptions(
    broker: &Broker,
    client: &Admitted,
) -> Result<(), eddy_queue::QueueError> {
    let Some(persistent) = &client.persistent else {
        return Ok(());
    };
    broker
        .sessions()
        .save(
            &client.client_id,
            &client.subscriptions.snapshot(),
            persistent.expiry.as_secs(),
            None,
            eddy_queue::Durability::Sync,
        )
        .await
}

fn subscribe(
    broker: &Broker,
    client: &Admitted,
    packet_id: NonZeroU16,
    filters: &[(ByteString, WireQoS)],
) -> MqttPacket {
    let mut granted = Vec::with_capacity(filters.len());
    for (raw, qos) in filters {
        let filter = TopicFilter::parse(raw).ok().filter(|f| {
            within_topic_limits(&broker.settings, f.as_str())
                && client.permissions.may_subscribe(f)
                && (client.subscriptions.contains(f)
                    || client.subscriptions.len() < broker.settings.device_max_subscriptions)
        });
        // Tencent devices get at most QoS 1.
        let qos = (*qos).min(WireQoS::AtLeastOnce);
        match filter {
            Some(filter) => {
                broker
                    .router
                    .subscribe(&client.client_id, &filter, core_qos(qos));
                client.subscriptions.insert(filter, core_qos(qos));
                granted.push(Some(qos));
            }
            None => {
                tracing::info!(client_id = %client.client_id, filter = %raw, "SUBSCRIBE refused (topic ACL or limits)");
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
