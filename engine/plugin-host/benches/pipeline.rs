//! Rule → Kafka end to end, in process: accepted messages offered to the running
//! `RuleEngine` with one rule (`SELECT * FROM 'p/+/data' WHERE temp > 0`, so every message
//! becomes one row), its CKafka action committed to the durable action queue (the embedded
//! log in a temporary directory, fsync and group commit as in the hub), the delivery worker
//! handing batches to the built-in `kafka` plugin (Wasm), and the plugin's records produced
//! to the broker — timed until the broker acknowledged the last row (`acks=all`). What is
//! left out is the MQTT side: no sockets, no PUBLISH decoding, no sessions.
//!
//! The broker is the one `scripts/start-kafka.sh` starts (tansu, memory storage); without
//! `EDDY_TEST_KAFKA` the bench says so and measures nothing.
//!
//! `export $(scripts/start-kafka.sh) && cargo bench -p eddy-plugin-host --bench pipeline`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eddy_core::destination::{DeliveryError, Destination, Envelope};
use eddy_core::{Message, MessageTap, QoS, Topic};
use eddy_delivery::{Delivery, DeliverySettings, QueueId};
use eddy_rules::{
    Action, DestinationFactory, DestinationFuture, EngineSettings, RuleDefinition, RuleEngine,
};

mod common;
use common::{kafka_bench, kafka_destination};

/// The Kafka destination, counting the rows it delivered.
#[derive(Debug)]
struct Counted {
    kafka: Arc<dyn Destination>,
    rows: AtomicU64,
}

#[async_trait::async_trait]
impl Destination for Counted {
    async fn deliver(&self, batch: &Arc<Envelope>) -> Result<(), DeliveryError> {
        self.kafka.deliver(batch).await?;
        self.rows.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[derive(Debug)]
struct Factory(Arc<Counted>);

impl DestinationFactory for Factory {
    fn start(&self, _queue: &QueueId, _rule: &str, _action: &Action) -> DestinationFuture {
        let counted = self.0.clone();
        Box::pin(async move { Ok(counted as Arc<dyn Destination>) })
    }
}

/// Tencent-style property reports from 100 devices.
fn messages(n: usize) -> Vec<Arc<Message>> {
    (0..n)
        .map(|i| {
            Arc::new(Message {
                topic: Topic::parse(&format!("p/dev{}/data", i % 100)).expect("topic"),
                payload: Bytes::from(format!(
                    r#"{{"method":"report","clientToken":"tok-{i:08}","temp":{},"humidity":50,"status":{{"switch":1}}}}"#,
                    20 + i % 10
                )),
                qos: QoS::AtMostOnce,
                retain: false,
                publisher: format!("pdev{}", i % 100),
                received_at_ms: 1_700_000_000_000,
                properties: None,
            })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let Some((runtime, brokers, host)) = kafka_bench("pipeline") else {
        return;
    };
    let topic = format!("eddy-pipeline-{}", std::process::id());
    let counted = Arc::new(Counted {
        kafka: runtime.block_on(kafka_destination(&host, &brokers, &topic)),
        rows: AtomicU64::new(0),
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = runtime.block_on(async {
        let log = eddy_queue::Log::open(dir.path()).expect("log");
        let delivery = Delivery::open(&log, DeliverySettings::default()).expect("delivery");
        RuleEngine::start(
            EngineSettings::default(),
            delivery,
            Arc::new(Factory(counted.clone())),
        )
        .expect("engine")
    });
    let rule = RuleDefinition {
        name: "to_kafka".into(),
        sql: "SELECT * FROM 'p/+/data' WHERE temp > 0".into(),
        actions: format!(
            r#"[{{"ckafka":{{"instance":{{"id":"ckafka-1","name":"bench"}},"topic":{{"id":"topic-1","name":"{topic}"}},"region":"ap-guangzhou"}}}}]"#
        ),
        error_actions: String::new(),
        enabled: true,
    };
    let refused = engine.load(&[rule]);
    assert!(refused.is_empty(), "{refused:?}");

    let batch = messages(4096);
    let mut group = c.benchmark_group("rule_to_kafka_end_to_end");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("messages", |b| {
        b.iter_custom(|rounds| {
            let start = Instant::now();
            runtime.block_on(async {
                let target = counted.rows.load(Ordering::Relaxed) + rounds * batch.len() as u64;
                for _ in 0..rounds {
                    for m in &batch {
                        if let Some(wait) = engine.offer(m, None).backpressure {
                            wait.await;
                        }
                    }
                }
                while counted.rows.load(Ordering::Relaxed) < target {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            });
            start.elapsed()
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
