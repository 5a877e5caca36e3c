//! `eddy-bench`: an MQTT load generator for Eddy and its peers (Mosquitto, rumqttd).
//!
//! Subscribers connect and subscribe first; then publishers send for `--duration`, as
//! fast as they can or at `--rate` messages/s each. Every payload starts with its send
//! time, so each subscriber records latency in an HDR histogram. The report gives
//! messages/s in and out, how many expected deliveries never came (loss), latency
//! percentiles and, with `--broker-pid`, the broker's CPU and resident memory from /proc —
//! as a table, or as JSON with `--json`.
//!
//! ```text
//! eddy-bench --port 1883 --scenario fan-in --publishers 8 --qos 0 --duration 10s
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::json;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// N publishers, each to its own topic, N subscribers, one topic each.
    P2p,
    /// N publishers to one subscriber (`bench/in/+`).
    FanIn,
    /// One publisher to N subscribers of one topic.
    FanOut,
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "MQTT load generator: throughput, loss and latency of a broker"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    #[arg(long, value_enum, default_value = "fan-in")]
    scenario: Scenario,
    /// Publishers (p2p, fan-in) or subscribers (fan-out).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// QoS of publishes and subscriptions (0, 1 or 2).
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// Payload bytes (at least 16: the send time and a sequence number).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// How long publishers send.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Messages per second per publisher; 0 sends as fast as the broker takes them.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// How long to wait for stragglers after the publishers stop.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    drain: Duration,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    /// The broker's process id, for its CPU time and resident memory.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn options(args: &Args, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, &args.host, args.port);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_inflight(100);
    if let (Some(u), Some(p)) = (&args.username, &args.password) {
        o.set_credentials(u, p);
    }
    o
}

/// Drives a client's event loop until told to stop; counts nothing.
async fn drive(mut events: EventLoop, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        if events.poll().await.is_err() {
            return;
        }
    }
}

/// CPU seconds (user + system) and resident kB of a process, from /proc.
fn proc_stats(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .ok()?;
    // USER_HZ is 100 on Linux.
    Some((ticks / 100.0, rss))
}

struct Subscriber {
    received: AtomicU64,
    histogram: std::sync::Mutex<Histogram<u64>>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let payload_len = args.payload.max(16);
    let q = qos(args.qos);
    let n = args.clients.max(1);
    // (topic each publisher uses, filter each subscriber uses)
    let (pub_topics, sub_filters): (Vec<String>, Vec<String>) = match args.scenario {
        Scenario::P2p => (
            (0..n).map(|i| format!("bench/p2p/{i}")).collect(),
            (0..n).map(|i| format!("bench/p2p/{i}")).collect(),
        ),
        Scenario::FanIn => (
            (0..n).map(|i| format!("bench/in/{i}")).collect(),
            vec!["bench/in/+".to_owned()],
        ),
        Scenario::FanOut => (
            vec!["bench/out".to_owned()],
            vec!["bench/out".to_owned(); n],
        ),
    };
    let fan_out = if matches!(args.scenario, Scenario::FanOut) {
        n as u64
    } else {
        1
    };
    let start = Instant::now();
    let stop_subs = Arc::new(AtomicBool::new(false));
    let subscriber = Arc::new(Subscriber {
        received: AtomicU64::new(0),
        histogram: std::sync::Mutex::new(Histogram::new_with_bounds(1, 60_000_000_000, 3)?),
    });

    // Subscribers first, each subscribed before any publisher starts.
    let mut sub_tasks = Vec::new();
    for (i, filter) in sub_filters.iter().enumerate() {
        let (client, mut events) =
            AsyncClient::new(options(&args, &format!("bench-sub-{i}")), 1024);
        client.subscribe(filter, q).await?;
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = events.poll().await? {
                break;
            }
        }
        let (sub, stop) = (subscriber.clone(), stop_subs.clone());
        sub_tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                .expect("valid histogram bounds");
            while !stop.load(Ordering::Relaxed) {
                let event = tokio::time::timeout(Duration::from_millis(200), events.poll()).await;
                let Ok(Ok(event)) = event else {
                    if matches!(event, Ok(Err(_))) {
                        break;
                    }
                    continue;
                };
                if let Event::Incoming(Packet::Publish(p)) = event
                    && p.payload.len() >= 8
                {
                    let mut sent = [0u8; 8];
                    sent.copy_from_slice(&p.payload[..8]);
                    let sent = u64::from_be_bytes(sent);
                    let now = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    let _ = local.record(now.saturating_sub(sent).max(1));
                    sub.received.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Ok(mut h) = sub.histogram.lock() {
                let _ = h.add(&local);
            }
            drop(client);
        }));
    }

    let cpu_before = args.broker_pid.and_then(proc_stats);
    let cpu_since = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let stop_pubs = Arc::new(AtomicBool::new(false));
    let publish_start = Instant::now();
    let mut pub_tasks = Vec::new();
    let mut drivers = Vec::new();
    for (i, topic) in pub_topics.iter().enumerate() {
        let (client, events) = AsyncClient::new(options(&args, &format!("bench-pub-{i}")), 1024);
        drivers.push(tokio::spawn(drive(events, stop_subs.clone())));
        let (sent, stop, topic) = (sent.clone(), stop_pubs.clone(), topic.clone());
        let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
        pub_tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if let Some(interval) = interval {
                    next += interval;
                    tokio::time::sleep_until(next.into()).await;
                }
                let mut payload = vec![0u8; payload_len];
                let now = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                payload[..8].copy_from_slice(&now.to_be_bytes());
                payload[8..16].copy_from_slice(&seq.to_be_bytes());
                if client
                    .publish(topic.as_str(), q, false, payload)
                    .await
                    .is_err()
                {
                    break;
                }
                seq += 1;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            let _ = client.disconnect().await;
        }));
    }
    let mut last_report = Instant::now();
    while publish_start.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if !args.json && last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            eprintln!(
                "  {:>5.1}s  sent {:>10}  received {:>10}",
                publish_start.elapsed().as_secs_f64(),
                sent.load(Ordering::Relaxed),
                subscriber.received.load(Ordering::Relaxed)
            );
        }
    }
    stop_pubs.store(true, Ordering::Relaxed);
    let elapsed = publish_start.elapsed();
    let sent_total = sent.load(Ordering::Relaxed);
    let expected = sent_total * fan_out;
    let drain_until = Instant::now() + args.drain;
    while subscriber.received.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_after = args.broker_pid.and_then(proc_stats);
    let cpu_secs = cpu_since.elapsed().as_secs_f64();
    stop_subs.store(true, Ordering::Relaxed);
    for task in sub_tasks {
        let _ = task.await;
    }
    for task in pub_tasks {
        let _ = task.await;
    }
    for driver in drivers {
        driver.abort();
    }
    let received = subscriber.received.load(Ordering::Relaxed);
    let h = subscriber
        .histogram
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
    let secs = elapsed.as_secs_f64();
    let broker = match (cpu_before, cpu_after) {
        // Over the whole measured span, drain included: CPU per wall second.
        (Some((c0, _)), Some((c1, rss))) => Some(((c1 - c0) / cpu_secs * 100.0, rss)),
        _ => None,
    };
    let report = json!({
        "scenario": format!("{:?}", args.scenario),
        "clients": n, "qos": args.qos, "payload": payload_len,
        "seconds": secs,
        "sent": sent_total, "expected": expected, "received": received,
        "lost": expected.saturating_sub(received),
        "in_per_s": sent_total as f64 / secs,
        "out_per_s": received as f64 / secs,
        "latency_ms": { "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": h.max() as f64 / 1e6 },
        "broker_cpu_percent": broker.map(|b| b.0),
        "broker_rss_kb": broker.map(|b| b.1),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{:?} clients={n} qos={} payload={payload_len}B: in {:.0}/s, out {:.0}/s, lost {} of {}, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms{}",
            args.scenario,
            args.qos,
            sent_total as f64 / secs,
            received as f64 / secs,
            expected.saturating_sub(received),
            expected,
            ms(0.5),
            ms(0.99),
            h.max() as f64 / 1e6,
            broker.map_or(String::new(), |(cpu, rss)| format!(
                ", broker CPU {cpu:.0}% RSS {rss} kB"
            )),
        );
    }
    Ok(())
}
