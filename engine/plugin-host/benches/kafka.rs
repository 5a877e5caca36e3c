//! Rule output → Kafka: batches of rule rows through the built-in `kafka` plugin (Wasm:
//! Tencent's CKafka JSON per row, base64 payload) and the rdkafka connector, until the
//! broker acknowledged every record (`acks=all`), against rdkafka producing the same
//! records directly from Rust. The broker is the one `scripts/start-kafka.sh` starts
//! (tansu, memory storage); without `EDDY_TEST_KAFKA` the bench says so and measures
//! nothing.
//!
//! `export $(scripts/start-kafka.sh) && cargo bench -p eddy-plugin-host --bench kafka`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

mod common;
use common::{envelope, kafka_bench, kafka_destination};

fn bench(c: &mut Criterion) {
    let Some((runtime, brokers, host)) = kafka_bench("kafka") else {
        return;
    };
    let topic = format!("eddy-bench-{}", std::process::id());
    let wasm = runtime.block_on(kafka_destination(&host, &brokers, &topic));
    let native: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("batch.num.messages", "10000")
        .create()
        .expect("producer");

    let mut group = c.benchmark_group("rule_to_kafka");
    group.sample_size(10);
    for rows in [256usize, 4096] {
        let batch = envelope(rows);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(BenchmarkId::new("wasm_plugin", rows), &batch, |b, batch| {
            b.iter(|| runtime.block_on(wasm.deliver(batch)).expect("delivered"));
        });
        group.bench_with_input(
            BenchmarkId::new("native_rdkafka", rows),
            &batch,
            |b, batch| {
                b.iter(|| {
                    runtime.block_on(async {
                        let pending: Vec<_> = batch
                            .rows
                            .iter()
                            .map(|row| {
                                native
                                    .send_result(
                                        FutureRecord::<str, [u8]>::to(&topic)
                                            .key("PRODUCT01/device-0001")
                                            .payload(&row.payload),
                                    )
                                    .map_err(|(e, _)| e)
                                    .expect("enqueued")
                            })
                            .collect();
                        for p in pending {
                            p.await.expect("not canceled").expect("acknowledged");
                        }
                    });
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
