//! decode → route → encode: the broker's per-message CPU path without the network.
//!
//! A buffer of MQTT 3.1.1 QoS 0 PUBLISHes (Tencent-shaped topics, 64-byte payloads, as they
//! arrive in one socket read) is decoded with rmqtt-codec, each topic is validated and
//! looked up in the subscription trie (one subscriber per device topic, among `devices`
//! subscriptions), and a PUBLISH is encoded for the subscriber.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use bytes::BytesMut;
use bytestring::ByteString;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eddy_broker::{Router, SubOptions};
use eddy_core::{QoS, Topic, TopicFilter};
use rmqtt_codec::types::{Publish, QoS as WireQoS};
use rmqtt_codec::v3;
use tokio_util::codec::{Decoder, Encoder};

const MESSAGES: usize = 1024;

fn publish(topic: String) -> v3::Packet {
    v3::Packet::Publish(Box::new(Publish {
        dup: false,
        retain: false,
        qos: WireQoS::AtMostOnce,
        topic: ByteString::from(topic),
        packet_id: None,
        payload: bytes::Bytes::from(vec![b'x'; 64]),
        properties: None,
    }))
}

fn broker_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_route_encode");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    for devices in [10usize, 10_000] {
        let router = Router::default();
        for d in 0..devices {
            let client: Arc<str> = Arc::from(format!("ABCDE12345dev{d}"));
            let filter = TopicFilter::parse(&format!("ABCDE12345/dev{d}/data")).unwrap();
            router.subscribe(&client, &filter, SubOptions::qos(QoS::AtMostOnce));
        }
        let mut codec = v3::Codec::new(64 * 1024);
        let mut wire = BytesMut::new();
        for i in 0..MESSAGES {
            let topic = format!("ABCDE12345/dev{}/data", i % devices);
            codec.encode(publish(topic), &mut wire).unwrap();
        }
        group.bench_with_input(BenchmarkId::from_parameter(devices), &wire, |b, wire| {
            let mut out = BytesMut::with_capacity(wire.len() * 2);
            b.iter(|| {
                let mut input = wire.clone();
                let mut codec = v3::Codec::new(64 * 1024);
                out.clear();
                let mut routed = 0usize;
                while let Some((packet, _)) = codec.decode(&mut input).unwrap() {
                    let v3::Packet::Publish(p) = packet else {
                        unreachable!()
                    };
                    let topic = Topic::parse(&p.topic).unwrap();
                    for (_client, _qos) in router.subscribers(&topic) {
                        routed += 1;
                        codec
                            .encode(v3::Packet::Publish(p.clone()), &mut out)
                            .unwrap();
                    }
                }
                black_box((routed, out.len()))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, broker_path);
criterion_main!(benches);
