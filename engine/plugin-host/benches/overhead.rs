//! What running a destination as a Wasm component costs: the built-in `republish` plugin
//! against the same work done natively (a `Destination` in Rust building the same messages
//! and publishing them through the same `Publish`), per batch of 1, 256 and 4,096 rows of a
//! 120-byte JSON report — with one fixed topic (the rows never enter the plugin:
//! `mqtt.publish-rows`) and with a topic filled from each row (the plugin reads every row). The difference per batch is the plugin-call overhead (instance
//! entry, copying rows into the sandbox and messages out, the host calls); divided by the
//! rows it is the per-row overhead.
//!
//! `cargo bench -p eddy-plugin-host --bench overhead`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eddy_core::destination::{DeliveryError, Destination, Envelope};
use eddy_core::{Message, Publish, PublishError, QoS, Topic};
use eddy_plugin_host::{Connectors, Grants, HostSettings, PluginHost};

mod common;
use common::envelope;

#[derive(Debug, Default)]
struct Counting(AtomicU64);

#[async_trait::async_trait]
impl Publish for Counting {
    async fn publish(&self, message: Message) -> Result<(), PublishError> {
        self.0
            .fetch_add(message.payload.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// The republish plugin's work, written natively: every row to one fixed topic, or to a
/// topic filled from the row's `dev` field (`template`).
#[derive(Debug)]
struct Native {
    topic: Topic,
    template: bool,
    publisher: Arc<Counting>,
}

impl Native {
    fn topic(&self, payload: &[u8]) -> Result<Topic, DeliveryError> {
        if !self.template {
            return Ok(self.topic.clone());
        }
        // Only the field the topic needs, borrowed: what a careful native plugin does.
        #[derive(serde::Deserialize)]
        struct Row<'a> {
            #[serde(borrow)]
            dev: std::borrow::Cow<'a, str>,
        }
        let row: Row<'_> =
            serde_json::from_slice(payload).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        Topic::parse(&format!("PRODUCT01/{}/alerts", row.dev))
            .map_err(|e| DeliveryError::Permanent(e.to_string()))
    }
}

#[async_trait::async_trait]
impl Destination for Native {
    async fn deliver(&self, batch: &Arc<Envelope>) -> Result<(), DeliveryError> {
        let messages = batch
            .rows
            .iter()
            .map(|row| {
                Ok(Message {
                    topic: self.topic(&row.payload)?,
                    payload: Bytes::copy_from_slice(&row.payload),
                    qos: QoS::from_u8(row.meta.qos).unwrap_or(QoS::AtMostOnce),
                    retain: false,
                    publisher: "$rule/bench".into(),
                    received_at_ms: 0,
                    properties: None,
                })
            })
            .collect::<Result<Vec<_>, DeliveryError>>()?;
        let results =
            futures::future::join_all(messages.into_iter().map(|m| self.publisher.publish(m)))
                .await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(drop)
            .map_err(|e| DeliveryError::Retry(e.to_string()))
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let counting = Arc::new(Counting::default());
    let host = PluginHost::new(
        HostSettings::default(),
        Connectors::new(Some(counting.clone() as Arc<dyn Publish>)),
    )
    .expect("host");
    let wasm = |topic: &str| {
        runtime.block_on(async {
            let plugin = host.load_builtin("republish").expect("plugin");
            host.destination(
                plugin,
                "bench",
                "$rule/bench",
                serde_json::json!({ "topic": topic }).to_string(),
                Grants::for_republish(topic).expect("grant"),
            )
            .await
            .expect("start")
        })
    };
    let native = |template| Native {
        topic: Topic::parse("PRODUCT01/out/alerts").expect("topic"),
        template,
        publisher: counting.clone(),
    };
    let cases: [(&str, Native, _); 2] = [
        ("fixed topic", native(false), wasm("PRODUCT01/out/alerts")),
        (
            "topic from the row",
            native(true),
            wasm("PRODUCT01/${dev}/alerts"),
        ),
    ];
    for (name, native, wasm) in &cases {
        let mut group = c.benchmark_group(format!("republish destination, {name}, per batch"));
        for rows in [1usize, 256, 4096] {
            let batch = envelope(rows);
            group.throughput(Throughput::Elements(rows as u64));
            group.bench_with_input(BenchmarkId::new("native", rows), &batch, |b, batch| {
                b.iter(|| runtime.block_on(native.deliver(batch)).expect("delivers"));
            });
            group.bench_with_input(BenchmarkId::new("wasm", rows), &batch, |b, batch| {
                b.iter(|| runtime.block_on(wasm.deliver(batch)).expect("delivers"));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
