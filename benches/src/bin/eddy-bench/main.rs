//! `eddy-bench`: an MQTT load generator for Eddy and its peers (Mosquitto, rumqttd).
//!
//! Message scenarios (`p2p`, `fan-in`, `fan-out`): subscribers connect and subscribe
//! first; then publishers send for `--duration`, as fast as the broker takes them or at
//! `--rate` messages/s each. Every payload carries its send time, its publisher and a
//! sequence number, so each subscriber records latency in an HDR histogram and counts
//! every expected delivery as received or lost (duplicates apart). Connection scenarios:
//! `connect` (a storm of CONNECT → CONNACK → DISCONNECT) and `idle` (many idle connections,
//! the broker's memory per connection). With `--broker-pid`, the broker's CPU and resident
//! memory from /proc. A table, or JSON with `--json`; progress on stderr while running.
//!
//! The client is rmqtt-codec over plain sockets (`wire.rs`), not a client library, so the
//! generator spends far less CPU per message than the broker it drives.
//!
//! ```text
//! eddy-bench --port 1883 --scenario fan-in --clients 20 --qos 0 --duration 10s
//! ```

mod flow;
mod payload;
mod storm;
mod wire;

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytestring::ByteString;
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

use crate::flow::{Publisher, Sent};
use crate::wire::{Conn, Endpoint, Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// N publishers, each to its own topic, N subscribers, one topic each.
    P2p,
    /// N publishers to one subscriber (`<prefix>/in/+`).
    FanIn,
    /// One publisher to N subscribers of one topic.
    FanOut,
    /// N workers connecting and disconnecting as fast as they can: connects/s.
    Connect,
    /// N idle connections held for --duration (under 22 minutes: their keep-alive is
    /// 900 s): the broker's memory per connection.
    Idle,
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "MQTT load generator: throughput, loss, latency, connects/s and memory per connection of a broker"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    #[arg(long, value_enum, default_value = "fan-in")]
    scenario: Scenario,
    /// Publishers (p2p, fan-in), subscribers (fan-out), workers (connect) or connections
    /// (idle; each needs a file descriptor here and in the broker).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// QoS of publishes and subscriptions.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Payload bytes (at least 16 binary; a JSON payload is at least its own length).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Payloads as JSON objects (`{"t":…,"s":…,"temp":35,"pad":"…"}`), for rule-engine runs.
    #[arg(long)]
    json_payload: bool,
    /// Topic prefix: publishers send to `<prefix>/p2p/N`, `<prefix>/in/N` or `<prefix>/out`.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Subscribe to this filter instead of the scenario's (fan-in only), e.g. a rule's
    /// republish topic.
    #[arg(long)]
    subscribe_to: Option<String>,
    /// How long publishers send (connect: how long the storm lasts; idle: how long the
    /// connections are held once open).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Messages per second per publisher; 0 sends as fast as the broker takes them.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// How long to wait for stragglers after the publishers stop.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// QoS 1/2: unacknowledged PUBLISHes a publisher may have in flight.
    #[arg(long, default_value_t = 100)]
    inflight: usize,
    /// idle: handshakes in progress at a time.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// Spread source addresses over 127.0.0.2–251 (loopback only), for more connections
    /// than one address has ephemeral ports.
    #[arg(long)]
    spread_sources: bool,
    /// Generic clients' username (peers, Eddy's open-broker mode).
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    /// connect / idle: log in as Eddy's Tencent key devices of this product, client n as
    /// device `<--device-prefix>n` (create them first, all with the --psk key).
    #[arg(long, requires = "psk")]
    product_id: Option<String>,
    /// The devices' PSK (base64, as CreateDevice returns it).
    #[arg(long, requires = "product_id")]
    psk: Option<String>,
    #[arg(long, default_value = "bench")]
    device_prefix: String,
    /// The broker's process id, for its CPU time and resident memory.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// CPU seconds (user + system) and resident kB of a process, from /proc.
pub fn proc_stats(pid: u32) -> Option<(f64, u64)> {
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

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let broker = (args.host.as_str(), args.port)
        .to_socket_addrs()?
        .next()
        .ok_or("the host resolves to no address")?;
    let tencent = match (&args.product_id, &args.psk) {
        (Some(product_id), Some(psk)) => {
            if !matches!(args.scenario, Scenario::Connect | Scenario::Idle) {
                return Err(
                    "Tencent devices only take part in the connect and idle scenarios \
                            (a device may only use its own topics)"
                        .into(),
                );
            }
            Some(wire::TencentDevices {
                product_id: product_id.clone(),
                key: BASE64.decode(psk)?,
                prefix: args.device_prefix.clone(),
            })
        }
        _ => None,
    };
    let endpoint = Endpoint {
        broker,
        username: args.username.clone(),
        password: args.password.clone(),
        tencent,
        spread_sources: args.spread_sources,
    };
    if args.subscribe_to.is_some() && args.scenario != Scenario::FanIn {
        return Err("--subscribe-to is for the fan-in scenario only".into());
    }
    let n = args.clients.max(1);
    let report = match args.scenario {
        Scenario::Connect => storm::connect_storm(endpoint, n, args.duration, !args.json).await,
        Scenario::Idle => {
            storm::idle_soak(
                endpoint,
                n,
                args.parallel,
                args.duration,
                args.broker_pid,
                !args.json,
            )
            .await
        }
        _ => messages(&args, &endpoint, n).await?,
    };
    if args.json {
        println!("{report}");
    } else {
        print_table(&report);
    }
    Ok(())
}

async fn messages(args: &Args, endpoint: &Endpoint, n: usize) -> Result<Value, Error> {
    let qos = wire::wire_qos(args.qos);
    let prefix = &args.prefix;
    // (topic of each publisher, filter of each subscriber, publishers each subscriber expects)
    let all: Vec<usize> = (0..n).collect();
    let (pub_topics, sub_filters, expects): (Vec<String>, Vec<String>, Vec<Vec<usize>>) =
        match args.scenario {
            Scenario::P2p => (
                (0..n).map(|i| format!("{prefix}/p2p/{i}")).collect(),
                (0..n).map(|i| format!("{prefix}/p2p/{i}")).collect(),
                (0..n).map(|i| vec![i]).collect(),
            ),
            Scenario::FanIn => (
                (0..n).map(|i| format!("{prefix}/in/{i}")).collect(),
                vec![
                    args.subscribe_to
                        .clone()
                        .unwrap_or_else(|| format!("{prefix}/in/+")),
                ],
                vec![all],
            ),
            _ => (
                vec![format!("{prefix}/out")],
                vec![format!("{prefix}/out"); n],
                vec![vec![0]; n],
            ),
        };
    let start = Instant::now();
    let stop_subs = Arc::new(AtomicBool::new(false));
    let live = Arc::new(AtomicU64::new(0));

    // Subscribers first, each subscribed before any publisher starts.
    let mut subscribers = Vec::new();
    for (i, filter) in sub_filters.iter().enumerate() {
        let mut conn = Conn::open(endpoint, "sub", i, 60, i).await?;
        conn.subscribe(filter, qos).await?;
        subscribers.push(tokio::spawn(flow::subscribe_loop(
            conn,
            start,
            stop_subs.clone(),
            live.clone(),
        )));
    }

    let cpu_before = args.broker_pid.and_then(proc_stats);
    let cpu_since = Instant::now();
    let stop_pubs = Arc::new(AtomicBool::new(false));
    let mut counters = Vec::new();
    let mut publishers = Vec::new();
    for (i, topic) in pub_topics.iter().enumerate() {
        let conn = Conn::open(endpoint, "pub", i, 60, n + i).await?;
        let sent = Arc::new(Sent::default());
        counters.push(sent.clone());
        let publisher = Publisher {
            index: i,
            topic: ByteString::from(topic.as_str()),
            qos,
            payload_len: args.payload,
            json: args.json_payload,
            rate: args.rate,
            inflight: args.inflight,
            start,
            stop: stop_pubs.clone(),
            counters: sent,
        };
        publishers.push(tokio::spawn(publisher.run(conn, args.drain)));
    }
    let total_sent = |counters: &[Arc<Sent>]| -> u64 {
        counters
            .iter()
            .map(|c| c.sent.load(Ordering::Relaxed))
            .sum()
    };
    let publish_start = Instant::now();
    let mut last_report = Instant::now();
    while publish_start.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if !args.json && last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            eprintln!(
                "  {:>5.1}s  sent {:>10}  received {:>10}",
                publish_start.elapsed().as_secs_f64(),
                total_sent(&counters),
                live.load(Ordering::Relaxed)
            );
        }
    }
    stop_pubs.store(true, Ordering::Relaxed);
    let elapsed = publish_start.elapsed();
    let mut publisher_errors = Vec::new();
    // A publisher blocked in a write the broker never reads again must not hang the run.
    let give_up = tokio::time::Instant::now() + args.drain + Duration::from_secs(30);
    for task in publishers {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(give_up, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => publisher_errors.push(e.to_string()),
            Ok(Err(e)) => publisher_errors.push(e.to_string()),
            Err(_) => {
                abort.abort();
                publisher_errors.push("a publisher was still blocked in a write".to_owned());
            }
        }
    }
    let sent: Vec<u64> = counters
        .iter()
        .map(|c| c.sent.load(Ordering::Relaxed))
        .collect();
    let expected: u64 = expects
        .iter()
        .map(|from| from.iter().map(|p| sent[*p]).sum::<u64>())
        .sum();
    let drain_until = Instant::now() + args.drain;
    while live.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_after = args.broker_pid.and_then(proc_stats);
    let cpu_secs = cpu_since.elapsed().as_secs_f64();
    stop_subs.store(true, Ordering::Relaxed);

    // The count: every expected delivery is received once, or lost.
    let (mut unique, mut duplicates, mut unsent, mut foreign) = (0u64, 0u64, 0u64, 0u64);
    let mut latency = flow::histogram();
    let mut subscriber_errors = Vec::new();
    for (task, from) in subscribers.into_iter().zip(&expects) {
        let seen = match task.await {
            Ok(Ok(seen)) => seen,
            Ok(Err(e)) => {
                subscriber_errors.push(e.to_string());
                continue;
            }
            Err(e) => {
                subscriber_errors.push(e.to_string());
                continue;
            }
        };
        let _ = latency.add(&seen.latency_ns);
        foreign += seen.foreign;
        for (publisher, s) in &seen.by_publisher {
            duplicates += s.duplicates;
            if from.contains(publisher) {
                let beyond = s.beyond(sent[*publisher]);
                unsent += beyond;
                unique += s.unique - beyond;
            } else {
                unsent += s.unique;
            }
        }
    }
    let lost = expected - unique.min(expected);
    let secs = elapsed.as_secs_f64();
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1e6;
    let broker = match (cpu_before, cpu_after) {
        // Over the whole measured span, drain included: CPU per wall second.
        (Some((c0, _)), Some((c1, rss))) => Some(((c1 - c0) / cpu_secs * 100.0, rss)),
        _ => None,
    };
    let sent_total: u64 = sent.iter().sum();
    Ok(json!({
        "scenario": format!("{:?}", args.scenario),
        "clients": n, "qos": args.qos, "payload": args.payload,
        "rate_per_publisher": args.rate,
        "seconds": secs,
        "sent": sent_total, "expected": expected, "received": unique, "lost": lost,
        "duplicates": duplicates, "unsent_received": unsent, "foreign": foreign,
        // sent × fan-out = received + lost, by construction; anything else is a fault.
        "count_check": if unique + lost == expected && unsent == 0 && foreign == 0 && subscriber_errors.is_empty() { "ok" } else { "MISMATCH" },
        "in_per_s": sent_total as f64 / secs,
        "out_per_s": unique as f64 / secs,
        "latency_ms": { "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": latency.max() as f64 / 1e6 },
        "broker_cpu_percent": broker.map(|b| b.0),
        "broker_rss_kb": broker.map(|b| b.1),
        "errors": publisher_errors.into_iter().chain(subscriber_errors).collect::<Vec<_>>(),
    }))
}

/// The report as a few readable lines.
fn print_table(report: &Value) {
    let Some(map) = report.as_object() else {
        return;
    };
    for (key, value) in map {
        match value {
            Value::Object(inner) => {
                let parts: Vec<String> = inner.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!("{key:>28}: {}", parts.join(", "));
            }
            Value::Number(n) if n.is_f64() => {
                println!("{key:>28}: {:.2}", n.as_f64().unwrap_or_default());
            }
            _ => println!("{key:>28}: {value}"),
        }
    }
}
