//! The writer task: the connection's mailbox to the socket, one flush per burst.

use std::num::NonZeroU16;
use std::sync::Arc;

use bytestring::ByteString;
use eddy_core::QoS;
use futures::SinkExt as _;
use futures::stream::SplitSink;
use rmqtt_codec::{MqttPacket, v3, v5};
use tokio::sync::mpsc;

use super::{Io, ToWriter, wire_qos};
use crate::Broker;
use crate::metrics::Reason;
use crate::settings::RateLimit;

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

pub(super) async fn write_loop(
    broker: Arc<Broker>,
    mut sink: SplitSink<Io, MqttPacket>,
    mut inbox: mpsc::Receiver<ToWriter>,
    v5: bool,
) {
    // Tencent limits what a device receives too: excess deliveries are dropped, counted.
    let settings = &broker.settings;
    let mut delivery_rate = RateLimit::new(settings.device_rate_per_sec, settings.device_burst);
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
                ToWriter::Deliver { .. } if !delivery_rate.allow() => {
                    broker
                        .metrics
                        .dropped
                        .get_or_create(&Reason::of("rate"))
                        .inc();
                    tracing::debug!("delivery over the device's message rate: dropped");
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
