//! The durable log's group commit: what a QoS 1 message to a persistent session costs
//! before its PUBACK may go out. `producers` tasks each append 200-byte records with
//! `Durability::Sync` as fast as they can; every record is fsynced before its commit
//! returns, and one fsync covers whatever was waiting at that moment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eddy_queue::{Batch, Durability, Log};

const RECORDS: u64 = 4096;

fn group_commit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // On the disk of the target dir, not a tmpfs: fsync is what is measured.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let log = Log::open(dir.path()).unwrap();
    let table = log.table("bench").unwrap();
    let mut group = c.benchmark_group("durable_log_sync_commit");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for producers in [1u64, 64, 1024] {
        group.bench_with_input(
            BenchmarkId::from_parameter(producers),
            &producers,
            |b, &producers| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        runtime.block_on(async {
                            let tasks: Vec<_> = (0..producers)
                                .map(|p| {
                                    let (log, table) = (log.clone(), table.clone());
                                    tokio::spawn(async move {
                                        for i in 0..RECORDS / producers {
                                            let mut batch = Batch::new();
                                            let key = (p << 32 | i).to_be_bytes().to_vec();
                                            batch.insert(&table, key, vec![7u8; 200]);
                                            log.commit(batch, Durability::Sync).await.unwrap();
                                        }
                                    })
                                })
                                .collect();
                            for task in tasks {
                                task.await.unwrap();
                            }
                        });
                        total += start.elapsed();
                    }
                    total
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, group_commit);
criterion_main!(benches);
