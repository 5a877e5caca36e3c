//! The writer task: the connection's mailbox to the socket, one flush per burst.
//!
//! For a persistent session it also keeps the session's queue honest: a QoS 1 delivery
//! carries its queue entry, which is removed when the client acknowledges it; messages
//! still queued from before the connection are sent first; and deliveries over the
//! device's rate wait their turn here rather than being dropped (they are durable, and
//! the queue's size bounds them).

use std::collections::{HashMap, HashSet, VecDeque};
use std::num::NonZeroU16;
use std::sync::Arc;

use bytestring::ByteString;
use eddy_core::{Message, QoS};
use futures::SinkExt as _;
use futures::stream::SplitSink;
use rmqtt_codec::{MqttPacket, v3, v5};
use tokio::sync::mpsc;

use super::properties::publish_properties;
use super::{Io, ToWriter, wire_qos};
use crate::Broker;
use crate::metrics::Reason;
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

/// PUBREL for QoS 2 delivery `packet_id`.
fn release(v5: bool, packet_id: NonZeroU16, known: bool) -> MqttPacket {
    if v5 {
        MqttPacket::V5(v5::Packet::PublishRelease(v5::PublishAck2 {
            packet_id,
            reason_code: if known {
                v5::PublishAck2Reason::Success
            } else {
                v5::PublishAck2Reason::PacketIdNotFound
            },
            properties: Vec::new(),
            reason_string: None,
        }))
    } else {
        MqttPacket::V3(v3::Packet::PublishRelease { packet_id })
    }
}

/// A durable delivery waiting for the device's rate to allow it.
struct Waiting {
    message: Arc<Message>,
    qos: QoS,
    seq: u64,
}

struct Writer {
    broker: Arc<Broker>,
    sink: SplitSink<Io, MqttPacket>,
    v5: bool,
    session: Option<(Arc<str>, Arc<Persistent>)>,
    /// Tencent's delivery rate, for devices only.
    rate: Option<RateLimit>,
    in_flight: InFlight,
    waiting: VecDeque<Waiting>,
    /// Queue entries sent from the queue at connect; a routed copy of one is skipped.
    replayed: HashSet<u64>,
}

pub(super) async fn write_loop(
    broker: Arc<Broker>,
    sink: SplitSink<Io, MqttPacket>,
    mut inbox: mpsc::Receiver<ToWriter>,
    v5: bool,
    device: bool,
    session: Option<(Arc<str>, Arc<Persistent>)>,
    replay: Vec<(u64, Arc<Message>)>,
) {
    // Tencent limits what a device receives too: excess live deliveries are dropped and
    // counted; durable ones wait.
    let settings = &broker.settings;
    let rate = device.then(|| RateLimit::new(settings.device_rate_per_sec, settings.device_burst));
    let mut w = Writer {
        broker: broker.clone(),
        sink,
        v5,
        session,
        rate,
        in_flight: InFlight::default(),
        waiting: VecDeque::new(),
        replayed: replay.iter().map(|(seq, _)| *seq).collect(),
    };
    for (seq, message) in replay {
        // Stored with the QoS it is delivered at.
        let qos = message.qos;
        w.waiting.push_back(Waiting { message, qos, seq });
    }
    loop {
        if !w.send_waiting().await {
            return;
        }
        let wait = (!w.waiting.is_empty()).then(|| {
            w.rate
                .as_ref()
                .map_or_else(Default::default, RateLimit::wait)
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
    /// Sends the waiting durable deliveries the rate allows now; false when the socket
    /// is gone.
    async fn send_waiting(&mut self) -> bool {
        let mut sent = false;
        while !self.waiting.is_empty() && self.allow() {
            let Some(Waiting { message, qos, seq }) = self.waiting.pop_front() else {
                break;
            };
            let Some(packet) = self.publish(&message, qos, Some(seq), false, &[]).await else {
                continue;
            };
            if self.sink.feed(packet).await.is_err() {
                return false;
            }
            sent = true;
        }
        !sent || self.sink.flush().await.is_ok()
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
                Some(release(self.v5, id, known))
            }
            ToWriter::Deliver { seq: Some(seq), .. } if self.replayed.remove(&seq) => None,
            ToWriter::Deliver {
                message,
                qos,
                seq: Some(seq),
                ..
            } if !self.waiting.is_empty() || !self.allow() => {
                // Durable: wait for the rate, behind the others already waiting.
                self.waiting.push_back(Waiting { message, qos, seq });
                if let Some((_, persistent)) = &self.session
                    && self.waiting.len() > persistent.queue_max
                {
                    // Still in the durable queue, if not dropped there: it comes again
                    // at the next connect.
                    self.waiting.pop_front();
                }
                None
            }
            ToWriter::Deliver { seq: None, .. } if !self.allow() => {
                self.broker
                    .metrics
                    .dropped
                    .get_or_create(&Reason::of("rate"))
                    .inc();
                tracing::debug!("delivery over the device's message rate: dropped");
                None
            }
            ToWriter::Deliver {
                message,
                qos,
                seq,
                retain,
                subscription_ids,
            } => {
                self.publish(&message, qos, seq, retain, &subscription_ids)
                    .await
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
        subscription_ids: &[std::num::NonZeroU32],
    ) -> Option<MqttPacket> {
        let now_ms = eddy_core::time::unix_now_ms();
        if message.expired(now_ms) {
            self.broker
                .metrics
                .dropped
                .get_or_create(&Reason::of("expired"))
                .inc();
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
            properties: self
                .v5
                .then(|| publish_properties(message, subscription_ids, now_ms)),
        };
        Some(if self.v5 {
            MqttPacket::V5(v5::Packet::Publish(Box::new(publish)))
        } else {
            MqttPacket::V3(v3::Packet::Publish(Box::new(publish)))
        })
    }
}
