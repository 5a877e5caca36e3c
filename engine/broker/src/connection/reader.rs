//! The reader task: inbound packets, the topic ACL, routing, the replies.

use std::collections::HashSet;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::{Arc, Mutex};
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
use crate::router::SubOptions;
use crate::settings::RateLimit;

use super::properties::{TopicAliases, message_properties};
use super::{Ack, Admitted, Io, ToWriter, core_qos};

/// Decoded, protocol-neutral inbound packets.
enum Inbound {
    Publish(Box<rmqtt_codec::types::Publish>),
    PubAck(NonZeroU16),
    PubRec(NonZeroU16),
    PubRel(NonZeroU16),
    PubComp(NonZeroU16),
    Subscribe {
        packet_id: NonZeroU16,
        /// MQTT 5 Subscription Identifier.
        id: Option<NonZeroU32>,
        filters: Vec<(ByteString, v5::SubscriptionOptions)>,
    },
    Unsubscribe {
        packet_id: NonZeroU16,
        filters: Vec<ByteString>,
    },
    Ping,
    /// DISCONNECT: whether the client asks for its will anyway (MQTT 5 reason 0x04), and
    /// the session expiry it sets for after this connection (MQTT 5).
    Disconnect(bool, Option<u32>),
    Other(&'static str),
}

/// Both protocol versions decode PUBLISH into the same type.
fn publish_in(p: Box<rmqtt_codec::types::Publish>) -> Inbound {
    Inbound::Publish(p)
}

fn inbound(packet: MqttPacket) -> Inbound {
    match packet {
        MqttPacket::V3(p) => match p {
            v3::Packet::Publish(p) => publish_in(p),
            v3::Packet::PublishAck { packet_id } => Inbound::PubAck(packet_id),
            v3::Packet::PublishReceived { packet_id } => Inbound::PubRec(packet_id),
            v3::Packet::PublishRelease { packet_id } => Inbound::PubRel(packet_id),
            v3::Packet::PublishComplete { packet_id } => Inbound::PubComp(packet_id),
            v3::Packet::Subscribe {
                packet_id,
                topic_filters,
            } => Inbound::Subscribe {
                packet_id,
                id: None,
                filters: topic_filters
                    .into_iter()
                    .map(|(f, qos)| {
                        (
                            f,
                            v5::SubscriptionOptions {
                                qos,
                                ..Default::default()
                            },
                        )
                    })
                    .collect(),
            },
            v3::Packet::Unsubscribe {
                packet_id,
                topic_filters,
            } => Inbound::Unsubscribe {
                packet_id,
                filters: topic_filters,
            },
            v3::Packet::PingRequest => Inbound::Ping,
            v3::Packet::Disconnect => Inbound::Disconnect(false, None),
            _ => Inbound::Other("unexpected packet"),
        },
        MqttPacket::V5(p) => match p {
            v5::Packet::Publish(p) => publish_in(p),
            v5::Packet::PublishAck(a) => Inbound::PubAck(a.packet_id),
            v5::Packet::PublishReceived(a) => Inbound::PubRec(a.packet_id),
            v5::Packet::PublishRelease(a) => Inbound::PubRel(a.packet_id),
            v5::Packet::PublishComplete(a) => Inbound::PubComp(a.packet_id),
            v5::Packet::Subscribe(s) => Inbound::Subscribe {
                packet_id: s.packet_id,
                id: s.id,
                filters: s.topic_filters,
            },
            v5::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
                packet_id: u.packet_id,
                filters: u.topic_filters,
            },
            v5::Packet::PingRequest => Inbound::Ping,
            v5::Packet::Disconnect(d) => Inbound::Disconnect(
                d.reason_code == v5::DisconnectReasonCode::DisconnectWithWillMessage,
                d.session_expiry_interval_secs,
            ),
            _ => Inbound::Other("unexpected packet"),
        },
        MqttPacket::Version(_) => Inbound::Other("unexpected packet"),
    }
}

/// Reads until the client leaves, is kicked, times out or breaks the protocol; returns the
/// DISCONNECT reason a v5 client should get. `will_discarded` is set when the client left
/// with a normal DISCONNECT, which discards its will.
pub(super) async fn read_loop(
    broker: &Broker,
    mut stream: SplitStream<Io>,
    mailbox: &mpsc::Sender<ToWriter>,
    mut kick: oneshot::Receiver<v5::DisconnectReasonCode>,
    client: &Admitted,
    acks: &mpsc::Sender<Ack>,
    will_discarded: &mut bool,
) -> Option<v5::DisconnectReasonCode> {
    // Tencent: disconnect after 1.5 × keepalive of silence; 0 disables the check.
    let idle_limit =
        (client.keep_alive > 0).then(|| Duration::from_millis(u64::from(client.keep_alive) * 1500));
    let settings = &broker.settings;
    let mut publish_rate = client
        .limits
        .rate
        .map(|(per_sec, burst)| RateLimit::new(per_sec, burst));
    // QoS 2 PUBLISHes routed and answered with PUBREC, awaiting their PUBREL: a resent
    // PUBLISH with one of these ids is not routed again (exactly once).
    // A persistent session keeps them across its connections (in memory: a restart
    // forgets them, and a PUBLISH resent after it is routed again).
    let received_qos2: Arc<Mutex<HashSet<u16>>> = client
        .persistent
        .as_ref()
        .map_or_else(Default::default, |p| p.qos2_received.clone());
    let qos2 = || {
        received_qos2
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let mut aliases = TopicAliases::default();
    loop {
        let next = async {
            match idle_limit {
                Some(limit) => tokio::time::timeout(limit, stream.next()).await.ok(),
                None => Some(stream.next().await),
            }
        };
        let item = tokio::select! {
            reason = &mut kick => {
                tracing::info!(client_id = %client.client_id, ?reason, "connection ended by the hub");
                return Some(reason.unwrap_or(v5::DisconnectReasonCode::SessionTakenOver));
            }
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
            Inbound::Publish(p) => {
                let rmqtt_codec::types::Publish {
                    topic,
                    payload,
                    qos,
                    retain,
                    packet_id,
                    properties,
                    ..
                } = *p;
                let topic = match aliases
                    .resolve(topic, properties.as_ref().and_then(|p| p.topic_alias))
                {
                    Ok(topic) => topic,
                    Err(reason) => {
                        tracing::info!(client_id = %client.client_id, ?reason, "bad topic alias: closing");
                        return Some(reason);
                    }
                };
                // A topic name with wildcards or U+0000 (or empty, with no v5 alias) breaks
                // the protocol: the connection is closed (MQTT 3.1.1 §4.7.3, MQTT 5 0x90).
                let Ok(topic) = Topic::parse(&topic) else {
                    tracing::info!(client_id = %client.client_id, topic = %topic, "invalid PUBLISH topic name: closing");
                    return Some(v5::DisconnectReasonCode::TopicNameInvalid);
                };
                // Tencent devices have no QoS 2 (§11), and a PUBACK would be the wrong
                // answer to it: the connection is closed (MQTT 5: 0x9B, QoS not supported).
                if core_qos(qos) > client.max_qos {
                    tracing::info!(client_id = %client.client_id, "QoS 2 PUBLISH from a device: closing");
                    broker
                        .metrics
                        .publish_refused
                        .get_or_create(&Reason::of("qos2"))
                        .inc();
                    return Some(v5::DisconnectReasonCode::QosNotSupported);
                }
                if qos == WireQoS::ExactlyOnce
                    && let Some(id) = packet_id
                    && qos2().contains(&id.get())
                {
                    // A resend of a QoS 2 PUBLISH already routed: answer it only (behind
                    // the acks still waiting, to keep their order).
                    let ack = Ack {
                        durable: None,
                        packet: publish_received(client.v5, id),
                    };
                    if acks.send(ack).await.is_err() {
                        return None;
                    }
                    continue;
                }
                let refusal = if !publish_rate.as_mut().is_none_or(RateLimit::allow) {
                    Some(Refused::Rate)
                } else if client.limits.device_topics
                    && !within_topic_limits(settings, topic.as_str())
                {
                    Some(Refused::TopicLimits)
                } else if !(client.permissions.may_publish(&topic)
                    || (client.device.is_some()
                        && broker.proxies.may_publish(&client.client_id, &topic)))
                {
                    Some(Refused::Acl)
                } else {
                    None
                };
                let properties = properties
                    .as_ref()
                    .and_then(|p| message_properties(p, unix_now_ms()));
                match publish(
                    broker, client, topic, payload, qos, retain, packet_id, refusal, properties,
                )
                .await
                {
                    Ok((reply, durable)) => {
                        if qos == WireQoS::ExactlyOnce
                            && let Some(id) = packet_id
                        {
                            qos2().insert(id.get());
                        }
                        // PUBACK / PUBREC go out in order, each once its message is
                        // durable; the reader goes on meanwhile.
                        if let Some(packet) = reply
                            && acks.send(Ack { durable, packet }).await.is_err()
                        {
                            return None;
                        }
                        None
                    }
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
            Inbound::PubRec(id) => {
                let _ = mailbox.send(ToWriter::Received(id)).await;
                None
            }
            Inbound::PubComp(id) => {
                let _ = mailbox.send(ToWriter::Completed(id)).await;
                None
            }
            Inbound::PubRel(id) => {
                let known = qos2().remove(&id.get());
                Some(super::ack2(client.v5, id, known, false))
            }
            Inbound::Subscribe {
                packet_id,
                id,
                filters,
            } => {
                let (reply, granted) = subscribe(broker, client, packet_id, id, &filters);
                // A persistent session's subscriptions are on disk before the SUBACK.
                if let Err(err) = save_subscriptions(broker, client).await {
                    tracing::error!(error = %err, client_id = %client.client_id, "saving the session's subscriptions failed: closing");
                    return Some(v5::DisconnectReasonCode::UnspecifiedError);
                }
                if mailbox.send(ToWriter::Packet(reply)).await.is_err() {
                    return None;
                }
                // Then the retained messages each new subscription matches.
                for (filter, granted) in granted {
                    for message in broker.retained().matching(&filter) {
                        let qos = message.qos.min(granted.qos);
                        let deliver = ToWriter::Deliver {
                            message,
                            qos,
                            seq: None,
                            retain: true,
                            subscription_ids: granted.id.into_iter().collect(),
                        };
                        if mailbox.send(deliver).await.is_err() {
                            return None;
                        }
                    }
                }
                None
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
            Inbound::Disconnect(with_will, expiry) => {
                *will_discarded = !with_will;
                // A session that expires with its connection cannot be made to outlive
                // it at DISCONNECT (MQTT 5 §3.14.2.2.2): only a persistent one changes.
                if let (Some(secs), Some(persistent)) = (expiry, &client.persistent)
                    && !persistent.expiry().is_zero()
                {
                    persistent.set_expiry(
                        Duration::from_secs(u64::from(secs)).min(settings.session_expiry),
                    );
                }
                return None;
            }
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
    properties: Option<Arc<eddy_core::MessageProperties>>,
) -> Result<(Option<MqttPacket>, Option<eddy_queue::Pending>), eddy_queue::QueueError> {
    // PUBACK for QoS 1, PUBREC for QoS 2; MQTT 5 carries the refusal as its reason code.
    // MQTT 3 has none: the PUBLISH is acknowledged so the client does not resend it
    // forever; the refusal is logged and counted.
    let ack = |refused: Option<Refused>| -> Option<MqttPacket> {
        let packet_id = packet_id?;
        let reason_code = match refused {
            None => v5::PublishAckReason::Success,
            Some(Refused::Rate) => v5::PublishAckReason::QuotaExceeded,
            Some(Refused::TopicLimits) => v5::PublishAckReason::TopicNameInvalid,
            Some(Refused::Acl) => v5::PublishAckReason::NotAuthorized,
        };
        let v5_ack = v5::PublishAck {
            packet_id,
            reason_code,
            properties: Vec::new(),
            reason_string: None,
        };
        match (qos, client.v5) {
            (WireQoS::AtMostOnce, _) => None,
            (WireQoS::AtLeastOnce, true) => Some(MqttPacket::V5(v5::Packet::PublishAck(v5_ack))),
            (WireQoS::AtLeastOnce, false) => {
                Some(MqttPacket::V3(v3::Packet::PublishAck { packet_id }))
            }
            (WireQoS::ExactlyOnce, true) => {
                Some(MqttPacket::V5(v5::Packet::PublishReceived(v5_ack)))
            }
            (WireQoS::ExactlyOnce, false) => {
                Some(MqttPacket::V3(v3::Packet::PublishReceived { packet_id }))
            }
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
        return Ok((ack(refusal), None));
    }
    let message = Arc::new(Message {
        topic,
        payload,
        qos: core_qos(qos),
        retain,
        publisher: client.client_id.to_string(),
        received_at_ms: unix_now_ms(),
        properties,
    });
    // A retained message is on disk before it is acknowledged, like a queued one.
    if message.retain {
        broker.retain(&message).await?;
    }
    let durable = broker.route_start(&message, Some(client.peer_ip)).await?;
    Ok((ack(None), durable))
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
            persistent.expiry().as_secs(),
            None,
            eddy_queue::Durability::Sync,
        )
        .await
}

/// Subscribes what the client may; returns the SUBACK and the filters granted, with
/// their QoS.
fn subscribe(
    broker: &Broker,
    client: &Admitted,
    packet_id: NonZeroU16,
    id: Option<NonZeroU32>,
    filters: &[(ByteString, v5::SubscriptionOptions)],
) -> (MqttPacket, Vec<(TopicFilter, SubOptions)>) {
    let mut granted = Vec::with_capacity(filters.len());
    let mut new = Vec::new();
    let limits = client.limits;
    for (raw, options) in filters {
        let filter = TopicFilter::parse(raw).ok().filter(|f| {
            // A shared subscription is judged by the filter it shares.
            let own = match crate::router::split_share(f.as_str()) {
                None => Some(f.clone()),
                Some(inner) => inner.ok(),
            };
            own.is_some_and(|own| {
                (!limits.device_topics || within_topic_limits(&broker.settings, own.as_str()))
                    && (client.permissions.may_subscribe(&own)
                        || (client.device.is_some()
                            && broker.proxies.may_subscribe(&client.client_id, &own)))
            }) && limits.max_subscriptions.is_none_or(|max| {
                client.subscriptions.contains(f) || client.subscriptions.len() < max
            })
        });
        // Devices get at most QoS 1.
        let qos = options.qos.min(super::wire_qos(client.max_qos));
        match filter {
            Some(filter) => {
                let sub = SubOptions {
                    qos: core_qos(qos),
                    no_local: options.no_local,
                    retain_as_published: options.retain_as_published,
                    id,
                };
                let existed = client.subscriptions.contains(&filter);
                broker.router.subscribe(&client.client_id, &filter, sub);
                client.subscriptions.insert(filter.clone(), sub);
                // Retained messages follow, as the subscription's Retain Handling says;
                // shared subscriptions get none (MQTT 5 §4.8.2).
                let wants_retained = match options.retain_handling {
                    v5::RetainHandling::AtSubscribe => true,
                    v5::RetainHandling::AtSubscribeNew => !existed,
                    v5::RetainHandling::NoAtSubscribe => false,
                };
                if wants_retained && crate::router::split_share(filter.as_str()).is_none() {
                    new.push((filter, sub));
                }
                granted.push(Some(qos));
            }
            None => {
                tracing::info!(client_id = %client.client_id, filter = %raw, "SUBSCRIBE refused (topic ACL or limits)");
                granted.push(None);
            }
        }
    }
    // For the device logs: each filter and whether it was granted.
    let detail = filters
        .iter()
        .zip(&granted)
        .map(|((f, _), g)| format!("{f} {}", if g.is_some() { "granted" } else { "refused" }))
        .collect::<Vec<_>>()
        .join(", ");
    broker.events.emit(
        crate::events::ClientEventKind::Subscribed,
        &client.client_id,
        client.device.as_ref(),
        client.peer_ip,
        &detail,
    );
    let reply = if client.v5 {
        MqttPacket::V5(v5::Packet::SubscribeAck(v5::SubscribeAck {
            packet_id,
            properties: Vec::new(),
            reason_string: None,
            status: granted
                .into_iter()
                .map(|g| match g {
                    Some(WireQoS::AtMostOnce) => v5::SubscribeAckReason::GrantedQos0,
                    Some(WireQoS::AtLeastOnce) => v5::SubscribeAckReason::GrantedQos1,
                    Some(WireQoS::ExactlyOnce) => v5::SubscribeAckReason::GrantedQos2,
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
    };
    (reply, new)
}

/// PUBREC for QoS 2 PUBLISH `packet_id`.
fn publish_received(v5: bool, packet_id: NonZeroU16) -> MqttPacket {
    if v5 {
        MqttPacket::V5(v5::Packet::PublishReceived(v5::PublishAck {
            packet_id,
            reason_code: v5::PublishAckReason::Success,
            properties: Vec::new(),
            reason_string: None,
        }))
    } else {
        MqttPacket::V3(v3::Packet::PublishReceived { packet_id })
    }
}
