//! Connection scenarios: a storm of short connections (CONNECT → CONNACK → DISCONNECT, as
//! fast as the broker accepts them) and a soak of idle connections (the broker's memory
//! per connection).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::flow::histogram;
use crate::proc_stats;
use crate::wire::{Conn, Endpoint};

/// `workers` loops of connect → CONNACK → DISCONNECT for `duration`.
pub async fn connect_storm(
    endpoint: Endpoint,
    workers: usize,
    duration: Duration,
    progress: bool,
) -> Value {
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (endpoint, stop, ok, failed, first_error) = (
            endpoint.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            first_error.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram();
            let mut nth = w;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match Conn::open(&endpoint, "storm", w, 60, nth).await {
                    Ok(conn) => {
                        let _ = latency.record((t.elapsed().as_nanos() as u64).max(1));
                        ok.fetch_add(1, Ordering::Relaxed);
                        conn.close().await;
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut first) = first_error.lock() {
                            first.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                nth += workers;
            }
            latency
        }));
    }
    let mut last = Instant::now();
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if progress && last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            eprintln!(
                "  {:>5.1}s  connected {:>8}  failed {:>6}",
                started.elapsed().as_secs_f64(),
                ok.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let mut latency: Histogram<u64> = histogram();
    for task in tasks {
        if let Ok(h) = task.await {
            let _ = latency.add(&h);
        }
    }
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1e6;
    let ok = ok.load(Ordering::Relaxed);
    json!({
        "scenario": "connect", "clients": workers, "seconds": secs,
        "connected": ok, "failed": failed.load(Ordering::Relaxed),
        "first_error": first_error.lock().ok().and_then(|e| e.clone()),
        "connects_per_s": ok as f64 / secs,
        "latency_ms": { "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": latency.max() as f64 / 1e6 },
    })
}

/// Seconds; brokers drop a connection silent for 1.5 × this.
const IDLE_KEEP_ALIVE: u16 = 900;

/// Opens `count` connections (at most `parallel` handshakes at a time), holds them idle
/// for `hold`, and reports the broker's resident memory before and after.
pub async fn idle_soak(
    endpoint: Endpoint,
    count: usize,
    parallel: usize,
    hold: Duration,
    broker_pid: Option<u32>,
    progress: bool,
) -> Value {
    let rss_before = broker_pid.and_then(proc_stats).map(|(_, rss)| rss);
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let started = Instant::now();
    let mut opening = Vec::with_capacity(count);
    for i in 0..count {
        let (endpoint, gate) = (endpoint.clone(), gate.clone());
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            // A long keep-alive (rumqttd refuses 0): silent for as long as the soak lasts.
            Some(
                Conn::open(&endpoint, "idle", i, IDLE_KEEP_ALIVE, i)
                    .await
                    .map_err(|e| e.to_string()),
            )
        }));
        if progress && i > 0 && i % 5_000 == 0 {
            eprintln!("  {i} connections queued");
        }
    }
    let mut held = Vec::with_capacity(count);
    let mut failed = 0u64;
    let mut first_error = None;
    for task in opening {
        match task.await {
            Ok(Some(Ok(conn))) => held.push(conn),
            Ok(Some(Err(e))) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            _ => failed += 1,
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    if progress {
        eprintln!(
            "  {} idle connections open ({failed} failed) in {connect_secs:.1}s; holding {hold:?}",
            held.len()
        );
    }
    tokio::time::sleep(hold).await;
    let after = broker_pid.and_then(proc_stats).map(|(_, rss)| rss);
    let open = held.len() as u64;
    drop(held);
    let per_conn = match (rss_before, after) {
        (Some(b), Some(a)) if open > 0 => Some((a.saturating_sub(b)) as f64 * 1024.0 / open as f64),
        _ => None,
    };
    json!({
        "scenario": "idle", "clients": count, "open": open, "failed": failed,
        "first_error": first_error,
        "connect_seconds": connect_secs,
        "broker_rss_kb_before": rss_before, "broker_rss_kb_after": after,
        "broker_bytes_per_connection": per_conn,
    })
}
