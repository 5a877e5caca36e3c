//! The delivery layer on a real log: order, merging, restart, bounds and metrics.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Hub, PATIENCE, Scripted, envelope, fast, queue};
use eddy_delivery::{DeliverySettings, FullPolicy, QueueStatus};
use tokio::sync::Semaphore;

#[tokio::test]
async fn delivers_in_order_merging_up_to_max_batch_rows() {
    let settings = DeliverySettings {
        max_batch_rows: 7,
        ..fast()
    };
    let hub = Hub::open(settings);
    let q = queue("rule/order/0");
    // Five entries of three rows, all queued before the worker starts.
    for tag in ["a", "b", "c", "d", "e"] {
        hub.delivery
            .enqueue(vec![(q.clone(), envelope(tag, 3))])
            .await
            .expect("enqueue");
    }
    assert_eq!(
        hub.delivery.queues(),
        [QueueStatus {
            queue: q.clone(),
            pending_rows: 15,
            pending_entries: 5,
            pending_bytes: hub.delivery.queues()[0].pending_bytes,
            dead_letters: 0,
            attached: false,
        }]
    );
    let (destination, mut probe) = Scripted::ok();
    hub.delivery.attach(q.clone(), destination, Vec::new());
    assert_eq!(hub.delivery.attached(), std::slice::from_ref(&q));
    let attempts = probe.rows(15).await;
    let sizes: Vec<usize> = attempts.iter().map(|a| a.ids.len()).collect();
    // 3+3 fit in 7, a third entry would not.
    assert_eq!(sizes, [6, 6, 3]);
    let all: Vec<String> = attempts.into_iter().flat_map(|a| a.ids).collect();
    let expected: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .flat_map(|t| (0..3).map(move |i| format!("{t}-{i}")))
        .collect();
    assert_eq!(all, expected);

    hub.delivery.shutdown().await;
    assert!(probe.is_idle(), "nothing delivered twice");
    let counts = hub.delivery.counts(&q).expect("counts");
    assert_eq!(counts.delivered_rows, 15);
    assert_eq!(counts.pending_rows, 0);
    assert_eq!(counts.pending_entries, 0);
    assert_eq!(counts.pending_bytes, 0);
    assert_eq!(counts.latency_count, 3);
    assert!(hub.delivery.attached().is_empty());
}

#[tokio::test]
async fn one_enqueue_feeds_several_queues_and_entries_keep_arriving() {
    let hub = Hub::open(fast());
    let (q1, q2) = (queue("rule/multi/0"), queue("rule/multi/1"));
    let (d1, mut p1) = Scripted::ok();
    let (d2, mut p2) = Scripted::ok();
    hub.delivery.attach(q1.clone(), d1, Vec::new());
    hub.delivery.attach(q2.clone(), d2, Vec::new());
    for round in 0..20 {
        let tag = format!("r{round}");
        hub.delivery
            .enqueue(vec![
                (q1.clone(), envelope(&tag, 2)),
                (q2.clone(), envelope(&tag, 1)),
                (q1.clone(), envelope(&format!("{tag}x"), 1)),
            ])
            .await
            .expect("enqueue");
    }
    let ids1: Vec<String> = p1.rows(60).await.into_iter().flat_map(|a| a.ids).collect();
    let ids2: Vec<String> = p2.rows(20).await.into_iter().flat_map(|a| a.ids).collect();
    let expected1: Vec<String> = (0..20)
        .flat_map(|r| [format!("r{r}-0"), format!("r{r}-1"), format!("r{r}x-0")])
        .collect();
    assert_eq!(ids1, expected1);
    assert_eq!(ids2, (0..20).map(|r| format!("r{r}-0")).collect::<Vec<_>>());
    hub.delivery.shutdown().await;
    assert_eq!(hub.delivery.counts(&q1).expect("q1").delivered_rows, 60);
    assert_eq!(hub.delivery.counts(&q2).expect("q2").delivered_rows, 20);
}

#[tokio::test]
async fn pending_entries_survive_a_restart_and_detach() {
    let hub = Hub::open(fast());
    let q = queue("rule/restart/0");
    // Attached, then detached: entries stay on disk.
    let (destination, _probe) = Scripted::ok();
    hub.delivery.attach(q.clone(), destination, Vec::new());
    hub.delivery.detach(&q);
    assert!(hub.delivery.attached().is_empty());
    for tag in ["a", "b", "c"] {
        hub.delivery
            .enqueue(vec![(q.clone(), envelope(tag, 2))])
            .await
            .expect("enqueue");
    }
    let before = hub.delivery.counts(&q).expect("counts");
    assert_eq!((before.pending_rows, before.pending_entries), (6, 3));

    let hub = hub.restart(fast()).await;
    let after = hub.delivery.counts(&q).expect("recovered");
    assert_eq!(after.pending_rows, 6);
    assert_eq!(after.pending_entries, 3);
    assert_eq!(after.pending_bytes, before.pending_bytes);
    let (destination, mut probe) = Scripted::ok();
    hub.delivery.attach(q.clone(), destination, Vec::new());
    let ids: Vec<String> = probe
        .rows(6)
        .await
        .into_iter()
        .flat_map(|a| a.ids)
        .collect();
    assert_eq!(ids, ["a-0", "a-1", "b-0", "b-1", "c-0", "c-1"]);

    // New entries after the restart come after the recovered ones.
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("d", 1))])
        .await
        .expect("enqueue");
    assert_eq!(probe.rows(1).await[0].ids, ["d-0"]);
    let hub = hub.restart(fast()).await;
    assert_eq!(
        hub.delivery.counts(&q).map(|c| c.pending_entries),
        None,
        "a drained queue leaves nothing to recover"
    );
}

/// The bytes one entry of `envelope(tag, rows)` takes in a queue named `name`.
async fn entry_bytes(name: &str, rows: usize) -> u64 {
    let hub = Hub::open(fast());
    hub.delivery
        .enqueue(vec![(queue(name), envelope("x", rows))])
        .await
        .expect("enqueue");
    hub.delivery.queues()[0].pending_bytes
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest_entries_and_counts_drops() {
    let name = "rule/drop/0";
    let entry = entry_bytes(name, 2).await;
    let settings = DeliverySettings {
        queue_max_bytes: entry * 2 + entry / 2,
        full_policy: FullPolicy::DropOldest,
        ..fast()
    };
    let hub = Hub::open(settings);
    let q = queue(name);
    for tag in ["a", "b", "c", "d", "e"] {
        hub.delivery
            .enqueue(vec![(q.clone(), envelope(tag, 2))])
            .await
            .expect("enqueue never waits");
    }
    let counts = hub.delivery.counts(&q).expect("counts");
    assert_eq!(counts.dropped_rows, 6, "a, b and c dropped");
    assert_eq!(counts.pending_entries, 2);
    assert!(counts.pending_bytes <= settings.queue_max_bytes);
    let (destination, mut probe) = Scripted::ok();
    hub.delivery.attach(q.clone(), destination, Vec::new());
    let ids: Vec<String> = probe
        .rows(4)
        .await
        .into_iter()
        .flat_map(|a| a.ids)
        .collect();
    assert_eq!(ids, ["d-0", "d-1", "e-0", "e-1"]);
    hub.delivery.shutdown().await;
    assert!(probe.is_idle());
}

#[tokio::test]
async fn block_waits_until_the_worker_frees_room() {
    let name = "rule/block/0";
    let entry = entry_bytes(name, 2).await;
    let settings = DeliverySettings {
        queue_max_bytes: entry * 2,
        ..fast()
    };
    let hub = Hub::open(settings);
    let q = queue(name);
    let gate = Arc::new(Semaphore::new(0));
    let (destination, mut probe) = Scripted::gated(gate.clone());
    hub.delivery.attach(q.clone(), destination, Vec::new());
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("a", 2))])
        .await
        .expect("enqueue a");
    // The worker holds `a` at the destination, which answers only when the gate opens.
    assert_eq!(probe.next().await.ids, ["a-0", "a-1"]);
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("b", 2))])
        .await
        .expect("b fits");
    let delivery = hub.delivery.clone();
    let (q3, mut blocked) = (q.clone(), None);
    let mut third = tokio::spawn(async move {
        delivery
            .enqueue(vec![(q3, envelope("c", 2))])
            .await
            .expect("enqueue c");
    });
    // The queue is full: `c` waits (a bounded negative check, not a synchronisation).
    if tokio::time::timeout(Duration::from_millis(200), &mut third)
        .await
        .is_ok()
    {
        blocked = Some("enqueue of c returned while the queue was full");
    }
    assert_eq!(blocked, None);
    assert_eq!(hub.delivery.counts(&q).expect("counts").pending_entries, 2);
    gate.add_permits(100);
    tokio::time::timeout(PATIENCE, third)
        .await
        .expect("c enqueued once a left")
        .expect("join");
    let rest: Vec<String> = probe
        .rows(4)
        .await
        .into_iter()
        .flat_map(|a| a.ids)
        .collect();
    assert_eq!(rest, ["b-0", "b-1", "c-0", "c-1"]);
    hub.delivery.shutdown().await;
    let counts = hub.delivery.counts(&q).expect("counts");
    assert_eq!((counts.delivered_rows, counts.dropped_rows), (6, 0));
}

#[tokio::test]
async fn blocked_producers_give_up_on_shutdown() {
    let name = "rule/blockstop/0";
    let entry = entry_bytes(name, 1).await;
    let hub = Hub::open(DeliverySettings {
        queue_max_bytes: entry,
        ..fast()
    });
    let q = queue(name);
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("a", 1))])
        .await
        .expect("a fits an empty queue");
    let delivery = hub.delivery.clone();
    let q2 = q.clone();
    let blocked = tokio::spawn(async move { delivery.enqueue(vec![(q2, envelope("b", 1))]).await });
    hub.delivery.shutdown().await;
    let result = tokio::time::timeout(PATIENCE, blocked)
        .await
        .expect("producer released")
        .expect("join");
    assert!(matches!(
        result,
        Err(eddy_delivery::DeliveryServiceError::ShutDown)
    ));
}

#[tokio::test]
async fn metrics_are_exported_per_queue() {
    let hub = Hub::open(fast());
    let q = queue("rule/metrics/0");
    let (destination, mut probe) = Scripted::new(
        vec![common::Step::Fail(eddy_delivery::DeliveryError::Retry(
            "busy".into(),
        ))],
        common::Step::Ok,
    );
    hub.delivery.attach(q.clone(), destination, Vec::new());
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("m", 3))])
        .await
        .expect("enqueue");
    probe.rows(6).await; // One failed attempt, one delivered.
    hub.delivery.shutdown().await;

    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(hub.delivery.collector()));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for line in [
        "eddy_delivery_delivered_rows_total{queue=\"rule/metrics/0\"} 3",
        "eddy_delivery_retries_total{queue=\"rule/metrics/0\"} 1",
        "eddy_delivery_failed_rows_total{queue=\"rule/metrics/0\"} 0",
        "eddy_delivery_dropped_rows_total{queue=\"rule/metrics/0\"} 0",
        "eddy_delivery_pending_rows{queue=\"rule/metrics/0\"} 0",
        "eddy_delivery_dead_letters{queue=\"rule/metrics/0\"} 0",
        "eddy_delivery_latency_seconds_count{queue=\"rule/metrics/0\"} 1",
        "eddy_delivery_latency_seconds_bucket{le=\"+Inf\",queue=\"rule/metrics/0\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}
