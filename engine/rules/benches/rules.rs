//! The rule engine's hot paths, in rows (messages) per second:
//! - `rule decode+filter+project`: one compiled rule run on a `MessageBatch` of 1 to 8192
//!   rows (issue C's acceptance: ≥2M rows/s per core at ≥1024 rows);
//! - `rule fixed cost per batch`: the same rule on an empty batch, i.e. what a batch costs
//!   whatever its size (schema checks, builders, the predicate and projection calls);
//! - `message batch build`: appending accepted messages into a `MessageBatch`, shared by
//!   every rule;
//! - `rule SELECT * pass-through`: the payload column handed through untouched.
//!
//! `cargo bench -p eddy-rules`. The payload is a realistic ~175 B Tencent-style device
//! report; half the messages pass the WHERE.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eddy_core::{Message, QoS, Topic};
use eddy_rules::{CompiledRule, MessageBatch, MessageBatchBuilder};

const SQL: &str =
    "SELECT temp, humidity, deviceName() AS dev FROM 'ABCDE12345/+/data' WHERE temp > 30";
const PASS_THROUGH: &str = "SELECT * FROM 'ABCDE12345/+/data'";
const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

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

fn batch(messages: &[Message]) -> MessageBatch {
    let mut builder = MessageBatchBuilder::with_capacity(messages.len());
    for (seq, m) in (0..).zip(messages) {
        builder.append(m, Some(CLIENT_IP), seq);
    }
    builder.finish()
}

fn bench(c: &mut Criterion) {
    let rule = CompiledRule::from_sql(SQL).expect("rule compiles");
    let all = messages(8192);
    let size = all.iter().map(|m| m.payload.len()).sum::<usize>() / all.len();

    let mut group = c.benchmark_group(format!("rule decode+filter+project ({size} B payload)"));
    for rows in [1usize, 64, 1024, 8192] {
        let messages = batch(&all[..rows]);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(BenchmarkId::from_parameter(rows), &messages, |b, m| {
            b.iter(|| black_box(rule.run(black_box(m)).expect("run")));
        });
    }
    group.finish();

    let empty = batch(&[]);
    c.bench_function("rule fixed cost per batch (0 rows)", |b| {
        b.iter(|| black_box(rule.run(black_box(&empty)).expect("run")));
    });

    let mut group = c.benchmark_group(format!("message batch build ({size} B payload)"));
    let rows = 1024;
    group.throughput(Throughput::Elements(rows as u64));
    let mut builder = MessageBatchBuilder::with_capacity(rows);
    group.bench_function(BenchmarkId::from_parameter(rows), |b| {
        b.iter(|| {
            for (seq, m) in (0..).zip(&all[..rows]) {
                builder.append(black_box(m), Some(CLIENT_IP), seq);
            }
            black_box(builder.finish())
        });
    });
    group.finish();

    let pass_through = CompiledRule::from_sql(PASS_THROUGH).expect("rule compiles");
    let mut group = c.benchmark_group(format!("rule SELECT * pass-through ({size} B payload)"));
    let messages = batch(&all[..rows]);
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_with_input(BenchmarkId::from_parameter(rows), &messages, |b, m| {
        b.iter(|| black_box(pass_through.run(black_box(m)).expect("run")));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
