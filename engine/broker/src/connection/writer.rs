//! The writer task: the connection's mailbox to the socket, one flush per burst.
//!
//! For a persistent session it also keeps the session's queue honest: a QoS 1 delivery
//! carries its queue entry, which is removed when the client acknowledges it; messages
//! still queued from before the connection are sent first; and deliveries over the
//! device's rate wait their turn here rather than being dropped (they are durable, and
//! the queue's size bounds them).

use std::collections::{HashMap, HashSet, VecDeque};
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use eddy_core::{Message, QoS};
use futures::SinkExt as _;
use futures::stream::SplitSink;
use rmqtt_codec::{MqttPacket, v3, v5};
use tokio::sync::mpsc;

use super::properties::publish_properties;
use super::{Io, ToWriter, wire_qos};
use crate::Broker;
use crate::session::Persistent;
use crate::settings::RateLimit;

/// QoS 1 and 2 deliveries awaiting the client's answer, by packet id, with their queue
/// entries (`None` once a QoS 2 delivery is released: the client has it).
#[derive(Default)]
struct InFlight {
    next: u16,
    by_id: HashMap<u16, Option<u64>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Whatever was unacknowledged is no longer in flight on this connection.
        self.broker
            .metrics
            .in_flight
            .dec_by(i64::try_from(self.in_flight.by_id.len()).unwrap_or(i64::MAX));
    }
}

impl InFlight {
    fn allocate(&mut self, seq: Option<u64>) -> Option<NonZeroU16> {
        for _ in 0..u16::MAX {
            self.next = self.next.wrapping_add(1).max(1);
            if let std::collections::hash_map::Entry::Vacant(slot) = self.by_id.entry(self.next) {
                slot.insert(seq);
                return NonZeroU16::new(self.next);
            }
        }
        None
    }
}

/// An upper bound of a PUBLISH's encoded size: fixed header, topic, packet id,
/// properties and payload.
fn encoded_size(message: &Message, properties: Option<&v5::PublishProperties>) -> usize {
    let props = properties.map_or(0, |p| {
        let text = |s: &Option<ByteString>| s.as_ref().map_or(0, |s| 3 + s.len());
        4 + text(&p.content_type)
            + text(&p.response_topic)
            + p.correlation_data.as_ref().map_or(0, |d| 3 + d.len())
            + p.user_properties
                .iter()
                .map(|(k, v)| 5 + k.len() + v.len())
                .sum::<usize>()
            + 5 * p.subscription_ids.len()
            + 5
            + 2
    });
    5 + 2 + message.topic.as_str().len() + 2 + props + message.payload.len()
}

/// A QoS 1/2 delivery waiting for room in the client's Receive Maximum, or (durable
/// ones) for the device's rate to allow it.
struct Waiting {
    message: Arc<Message>,
    qos: QoS,
    seq: Option<u64>,
    retain: bool,
    subscription_ids: Vec<NonZeroU32>,
}

/// What the writer knows of its client.
pub(super) struct Peer {
    pub(super) v5: bool,
    /// Its delivery rate (per second, burst), if limited.
    pub(super) rate: Option<(f64, u32)>,
    /// MQTT 5 Receive Maximum.
    pub(super) receive_max: u16,
    /// MQTT 5 Maximum Packet Size.
    pub(super) max_packet_size: Option<u32>,
}

struct Writer {
    broker: Arc<Broker>,
    sink: SplitSink<Io, MqttPacket>,
    v5: bool,
    session: Option<(Arc<str>, Arc<Persistent>)>,
    /// Tencent's delivery rate, for devices only.
    rate: Option<RateLimit>,
    receive_max: usize,
    max_packet_size: Option<u32>,
    in_flight: InFlight,
    waiting: VecDeque<Waiting>,
    /// Most deliveries kept waiting; beyond it the oldest goes (a durable one stays in its
    /// queue for the next connection).
    waiting_max: usize,
    /// Queue entries sent from the queue at connect; a routed copy of one is skipped.
    replayed: HashSet<u64>,
}

pub(super) async fn write_loop(
    broker: Arc<Broker>,
    sink: SplitSink<Io, MqttPacket>,
    mut inbox: mpsc::Receiver<ToWriter>,
    peer: Peer,
    session: Option<(Arc<str>, Arc<Persistent>)>,
    replay: Vec<(u64, Arc<Message>)>,
) {
    // Tencent limits what a device receives too: excess live deliveries are dropped and
    // counted; durable ones wait.
    let settings = &broker.settings;
    let rate = peer
        .rate
        .map(|(per_sec, burst)| RateLimit::new(per_sec, burst));
    let waiting_max = settings
        .outgoing_queue
        .max(session.as_ref().map_or(0, |(_, p)| p.queue_max));
    let mut w = Writer {
        broker: broker.clone(),
        sink,
        v5: peer.v5,
        session,
        rate,
        receive_max: usize::from(peer.receive_max.max(1)),
        max_packet_size: peer.max_packet_size,
        in_flight: InFlight::default(),
        waiting: VecDeque::new(),
        waiting_max,
        replayed: replay.iter().map(|(seq, _)| *seq).collect(),
    };
    for (seq, message) in replay {
        // Stored with the QoS it is delivered at.
        let qos = message.qos;
        w.waiting.push_back(Waiting {
            message,
            qos,
            seq: Some(seq),
            retain: false,
            subscription_ids: Vec::new(),
        });
    }
    loop {
        if !w.send_waiting().await {
            return;
        }
        // Deliveries wait for an ack (room in the window: any command may bring one) or
        // for the rate: then also for the next token.
        let wait = (!w.waiting.is_empty() && w.window_open()).then(|| {
            w.rate
                .as_ref()
                .map_or(Duration::from_millis(1), RateLimit::wait)
                .max(Duration::from_millis(1))
        });
        let first = tokio::select! {
            command = inbox.recv() => match command {
                Some(command) => command,
                None => return,
            },
            () = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => continue,
        };
        let mut next = Some(first);
        while let Some(command) = next {
            match w.handle(command).await {
                Step::Continue => {}
                Step::Stop => return,
            }
            next = inbox.try_recv().ok();
        }
        if w.sink.flush().await.is_err() {
            return;
        }
    }
}

enum Step {
    Continue,
    Stop,
}

impl Writer {
    /// Whether the client's Receive Maximum allows one more QoS 1/2 delivery.
    fn window_open(&self) -> bool {
        self.in_flight.by_id.len() < self.receive_max
    }

    /// Sends the waiting deliveries the window and the rate allow now; false when the
    /// socket is gone.
    async fn send_waiting(&mut self) -> bool {
        let mut sent = false;
        while !self.waiting.is_empty() && self.window_open() && self.allow() {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            let Some(packet) = self
                .publish(&w.message, w.qos, w.seq, w.retain, &w.subscription_ids)
                .await
            else {
                continue;
            };
            if self.sink.feed(packet).await.is_err() {
                return false;
            }
            sent = true;
        }
        !sent || self.sink.flush().await.is_ok()
    }

    /// Parks a delivery until the window or the rate allows it.
    fn park(&mut self, waiting: Waiting) {
        self.waiting.push_back(waiting);
        if self.waiting.len() > self.waiting_max
            && let Some(oldest) = self.waiting.pop_front()
            && oldest.seq.is_none()
        {
            self.broker.dropped("overflow");
        }
    }

    async fn handle(&mut self, command: ToWriter) -> Step {
        let packet = match command {
            ToWriter::Packet(p) => Some(p),
            ToWriter::Acked(id) | ToWriter::Completed(id) => {
                match self.in_flight.by_id.remove(&id.get()) {
                    Some(Some(seq)) => {
                        self.broker.metrics.in_flight.dec();
                        self.acked(seq).await;
                    }
                    Some(None) => {
                        self.broker.metrics.in_flight.dec();
                    }
                    None => {}
                }
                None
            }
            ToWriter::Received(id) => {
                // The client has the message: it leaves the queue; the id stays taken
                // until PUBCOMP.
                let entry = self.in_flight.by_id.get_mut(&id.get());
                let known = entry.is_some();
                if let Some(entry) = entry
                    && let Some(seq) = entry.take()
                {
                    self.acked(seq).await;
                }
                Some(super::ack2(self.v5, id, known, true))
            }
            ToWriter::Deliver { seq: Some(seq), .. } if self.replayed.remove(&seq) => None,
            ToWriter::Deliver {
                message,
                qos,
                seq,
                retain,
                subscription_ids,
            } => {
                let waiting = Waiting {
                    message,
                    qos,
                    seq,
                    retain,
                    subscription_ids,
                };
                if qos > QoS::AtMostOnce && (!self.waiting.is_empty() || !self.window_open()) {
                    // Behind the others, or over the client's Receive Maximum.
                    self.park(waiting);
                    None
                } else if !self.allow() {
                    if waiting.seq.is_some() {
                        // Durable: it waits for the rate rather than being lost.
                        self.park(waiting);
                    } else {
                        self.broker.dropped("rate");
                        tracing::debug!("delivery over the device's message rate: dropped");
                    }
                    None
                } else {
                    self.publish(
                        &waiting.message,
                        waiting.qos,
                        waiting.seq,
                        waiting.retain,
                        &waiting.subscription_ids,
                    )
                    .await
                }
            }
            ToWriter::Close(reason) => {
                if self.v5
                    && let Some(reason_code) = reason
                {
                    let _ = self
                        .sink
                        .feed(MqttPacket::V5(v5::Packet::Disconnect(v5::Disconnect {
                            reason_code,
                            ..Default::default()
                        })))
                        .await;
                }
                let _ = self.sink.flush().await;
                let _ = self.sink.close().await;
                return Step::Stop;
            }
        };
        if let Some(packet) = packet
            && self.sink.feed(packet).await.is_err()
        {
            return Step::Stop;
        }
        Step::Continue
    }

    /// Whether the delivery rate allows one more message now.
    fn allow(&mut self) -> bool {
        self.rate.as_mut().is_none_or(RateLimit::allow)
    }

    /// The client acknowledged a durable delivery: it leaves the session's queue.
    async fn acked(&self, seq: u64) {
        let Some((client_id, persistent)) = &self.session else {
            return;
        };
        {
            let mut queued = persistent.queued();
            if *queued > 0 {
                *queued -= 1;
                self.broker.metrics.queued.dec();
            }
        }
        if let Err(err) = self.broker.sessions().dequeue(client_id, seq).await {
            // It stays queued and is delivered again at the next connect.
            tracing::error!(error = %err, %client_id, "removing an acknowledged message failed");
        }
    }

    /// The PUBLISH for a delivery; `None` when the message has expired (MQTT 5 Message
    /// Expiry Interval), which also takes it out of the session's queue.
    async fn publish(
        &mut self,
        message: &Message,
        qos: QoS,
        seq: Option<u64>,
        retain: bool,
        subscription_ids: &[NonZeroU32],
    ) -> Option<MqttPacket> {
        let now_ms = eddy_core::time::unix_now_ms();
        let properties = self
            .v5
            .then(|| publish_properties(message, subscription_ids, now_ms));
        // An expired message, or one bigger than the client accepts (MQTT 5 §3.1.2.11.4),
        // is discarded as if delivered.
        let too_large = self.max_packet_size.is_some_and(|max| {
            encoded_size(message, properties.as_ref()) > usize::try_from(max).unwrap_or(usize::MAX)
        });
        if message.expired(now_ms) || too_large {
            self.broker
                .dropped(if too_large { "too_large" } else { "expired" });
            if let Some(seq) = seq {
                self.acked(seq).await;
            }
            return None;
        }
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => self.in_flight.allocate(seq),
        };
        if packet_id.is_some() {
            self.broker.metrics.in_flight.inc();
        }
        let publish = rmqtt_codec::types::Publish {
            dup: false,
            retain,
            qos: wire_qos(if packet_id.is_some() {
                qos
            } else {
                QoS::AtMostOnce
            }),
            topic: ByteString::from(message.topic.as_str()),
            packet_id,
            payload: message.payload.clone(),
            properties,
        };
        Some(if self.v5 {
            MqttPacket::V5(v5::Packet::Publish(Box::new(publish)))
        } else {
            MqttPacket::V3(v3::Packet::Publish(Box::new(publish)))
        })
    }
}
