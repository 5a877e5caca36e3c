//! Decode + filter + project throughput of one compiled rule, per batch size.
//!
//! `cargo bench -p eddy-rules`. The payload is a realistic ~190 B device report; half the
//! messages pass the WHERE. Throughput is reported in rows (messages) per second.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eddy_core::{Message, QoS, Topic};
use eddy_rules::{CompiledRule, MessageBatchBuilder};

const SQL: &str =
    "SELECT temp, humidity, deviceName() AS dev FROM 'ABCDE12345/+/data' WHERE temp > 30";

fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let payload = format!(
                r#"{{"method":"report","clientToken":"tok-{i:08}","timestamp":{ts},"params":{{"battery":87,"rssi":-61}},"temp":{temp}.{frac},"humidity":{hum},"device_status":{{"switch":1,"mode":"auto"}}}}"#,
                ts = 1_700_000_000 + i,
                temp = 25 + (i % 12),
                frac = i % 10,
                hum = 40 + (i % 30),
            );
            Message {
                topic: Topic::parse(&format!("ABCDE12345/dev{}/data", i % 100)).expect("topic"),
                payload: Bytes::from(payload),
                qos: QoS::AtLeastOnce,
                retain: false,
                publisher: format!("ABCDE12345dev{}", i % 100),
                received_at_ms: 1_700_000_000_000 + i as i64,
                properties: None,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rule = CompiledRule::from_sql(SQL).expect("rule compiles");
    let all = messages(8192);
    let sizes = all.iter().map(|m| m.payload.len()).sum::<usize>() / all.len();
    let mut group = c.benchmark_group(format!("rule decode+filter+project ({sizes} B payload)"));
    for batch in [1usize, 64, 1024, 8192] {
        let mut builder = MessageBatchBuilder::with_capacity(batch);
        for (seq, m) in (0..).zip(&all[..batch]) {
            builder.append(m, None, seq);
        }
        let messages = builder.finish();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &messages, |b, m| {
            b.iter(|| black_box(rule.run(black_box(m)).expect("run")));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
