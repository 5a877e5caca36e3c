//! A Tencent device as the device SDKs drive it over MQTT, for the device-service tests:
//! subscribe, publish JSON, wait for the next message on a topic.

use std::collections::VecDeque;

use rumqttc::{AsyncClient, EventLoop, Packet, Publish, QoS};
use serde_json::Value;

use crate::{DeviceCredentials, connected, next_incoming, support};

pub struct TestDevice {
    pub client: AsyncClient,
    pub events: EventLoop,
    /// Messages that arrived while waiting for something else (a QoS 1 request's answer
    /// comes before its PUBACK: the hub acknowledges once it has answered).
    early: VecDeque<Publish>,
}

impl TestDevice {
    pub async fn connect(hub: &support::Hub, creds: &DeviceCredentials) -> Self {
        let (client, events) = connected(hub, creds).await;
        Self {
            client,
            events,
            early: VecDeque::new(),
        }
    }

    /// Subscribes with QoS 0 (as the SDKs do for service topics) and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtMostOnce)
            .await
            .unwrap();
        loop {
            match next_incoming(&mut self.events).await.unwrap() {
                Packet::SubAck(ack) => {
                    assert!(
                        ack.return_codes
                            .iter()
                            .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
                        "{filter} refused: {ack:?}"
                    );
                    return;
                }
                Packet::Publish(p) => panic!("unexpected message on {} while subscribing", p.topic),
                _ => {}
            }
        }
    }

    /// Publishes `payload` with QoS 0.
    pub async fn send(&mut self, topic: &str, payload: &Value) {
        self.send_raw(topic, payload.to_string().into_bytes(), QoS::AtMostOnce)
            .await;
    }

    /// Publishes raw bytes; with QoS 1, returns once the hub's PUBACK arrived.
    pub async fn send_raw(&mut self, topic: &str, payload: Vec<u8>, qos: QoS) {
        self.client
            .publish(topic, qos, false, payload)
            .await
            .unwrap();
        if qos == QoS::AtMostOnce {
            return;
        }
        loop {
            match next_incoming(&mut self.events).await.unwrap() {
                Packet::PubAck(_) => return,
                Packet::Publish(p) => self.early.push_back(p),
                _ => {}
            }
        }
    }

    /// The next message the hub sends, which must be on `topic`, as raw bytes.
    pub async fn receive_raw(&mut self, topic: &str) -> Vec<u8> {
        let p = match self.early.pop_front() {
            Some(p) => p,
            None => loop {
                if let Packet::Publish(p) = next_incoming(&mut self.events).await.unwrap() {
                    break p;
                }
            },
        };
        assert_eq!(
            p.topic,
            topic,
            "payload: {:?}",
            String::from_utf8_lossy(&p.payload)
        );
        p.payload.to_vec()
    }

    /// The next message the hub sends, which must be JSON on `topic`.
    pub async fn receive(&mut self, topic: &str) -> Value {
        let bytes = self.receive_raw(topic).await;
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "not JSON on {topic}: {e}: {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    }

    /// Sends a request and returns the answer on `reply_topic`.
    pub async fn ask(&mut self, topic: &str, reply_topic: &str, request: &Value) -> Value {
        self.send(topic, request).await;
        self.receive(reply_topic).await
    }
}
