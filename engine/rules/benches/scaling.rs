//! The running engine as the rule count grows: 1, 100 and 10,000 loaded rules, each with
//! its own FROM filter (`p/devN/+`), messages spread over the first (up to) 100 devices so
//! each matches exactly one rule. Measures the whole path a message takes — offer (index
//! check, queue), batching, index lookup per message, decode + WHERE + SELECT, the
//! durable commit into the action queues (fsync, group commit) and the delivery worker —
//! up to the rows reaching a destination that only counts. With the
//! shared filter index the per-message cost should not grow with the rule count.
//!
//! Also prints the time to load each set and the resident memory per loaded rule.
//!
//! `cargo bench -p eddy-rules --bench scaling`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eddy_core::destination::{DeliveryError, Destination, Envelope};
use eddy_core::{Message, MessageTap, QoS, Topic};
use eddy_delivery::{Delivery, DeliverySettings, QueueId};
use eddy_rules::{
    Action, DestinationFactory, DestinationFuture, EngineSettings, RuleDefinition, RuleEngine,
};

#[derive(Debug, Default)]
struct Counting(AtomicU64);

#[async_trait::async_trait]
impl Destination for Counting {
    async fn deliver(&self, batch: &Arc<Envelope>) -> Result<(), DeliveryError> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[derive(Debug)]
struct Factory(Arc<Counting>);

impl DestinationFactory for Factory {
    fn start(&self, _queue: &QueueId, _rule: &str, _action: &Action) -> DestinationFuture {
        let counting = self.0.clone();
        Box::pin(async move { Ok(counting as Arc<dyn Destination>) })
    }
}

fn rules(n: usize) -> Vec<RuleDefinition> {
    (0..n)
        .map(|i| RuleDefinition {
            name: format!("r{i}"),
            sql: format!("SELECT temp, deviceName() AS dev FROM 'p/dev{i}/+' WHERE temp > 0"),
            actions: r#"[{"republish":{"topic":"out"}}]"#.into(),
            error_actions: String::new(),
            enabled: true,
        })
        .collect()
}

fn messages(n: usize, devices: usize) -> Vec<Arc<Message>> {
    (0..n)
        .map(|i| {
            Arc::new(Message {
                topic: Topic::parse(&format!("p/dev{}/data", i % devices)).expect("topic"),
                payload: Bytes::from(format!(
                    r#"{{"method":"report","clientToken":"tok-{i:08}","temp":{},"humidity":50,"status":{{"switch":1}}}}"#,
                    20 + i % 10
                )),
                qos: QoS::AtMostOnce,
                retain: false,
                publisher: format!("pdev{}", i % devices),
                received_at_ms: 0,
                properties: None,
            })
        })
        .collect()
}

/// Resident set size in bytes, from /proc (Linux).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("rule engine, messages through N loaded rules");
    group.throughput(Throughput::Elements(4096));
    for n in [1usize, 100, 10_000] {
        let batch = messages(4096, n.min(100));
        let counted = Arc::new(Counting::default());
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
        let definitions = rules(n);
        let before = rss();
        let started = Instant::now();
        assert!(engine.load(&definitions).is_empty());
        println!(
            "{n} rules: loaded in {:?}, ≈{} B resident per rule",
            started.elapsed(),
            rss().saturating_sub(before) / n as u64
        );
        // Each message matches exactly one rule and passes its WHERE.
        let expected_per_round = batch.len() as u64;
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|rounds| {
                let start = Instant::now();
                runtime.block_on(async {
                    let target = counted.0.load(Ordering::Relaxed) + rounds * expected_per_round;
                    for _ in 0..rounds {
                        for m in &batch {
                            if let Some(wait) = engine.offer(m, None).backpressure {
                                wait.await;
                            }
                        }
                    }
                    while counted.0.load(Ordering::Relaxed) < target {
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                });
                start.elapsed()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
