//! What the delivery layer does when destinations fail: retries and backoff, error
//! queues, dead letters and their redrive, panics.

mod common;

use std::time::Duration;

use common::{Hub, Scripted, Step, envelope, fast, queue};
use eddy_delivery::{DeliveryError, DeliverySettings};

fn retry(reason: &str) -> Step {
    Step::Fail(DeliveryError::Retry(reason.into()))
}

fn permanent(reason: &str) -> Step {
    Step::Fail(DeliveryError::Permanent(reason.into()))
}

#[tokio::test]
async fn retry_then_success_redelivers_only_the_failed_batch() {
    let hub = Hub::open(fast());
    let q = queue("rule/retry/0");
    let (destination, mut probe) =
        Scripted::new(vec![retry("down"), retry("still down")], Step::Ok);
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("a", 2))])
        .await
        .expect("enqueue");
    hub.delivery.attach(q.clone(), destination, Vec::new());
    let attempts = probe.rows(6).await;
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a.ids == ["a-0", "a-1"]));
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("b", 1))])
        .await
        .expect("enqueue");
    assert_eq!(probe.next().await.ids, ["b-0"]);
    hub.delivery.shutdown().await;
    assert!(probe.is_idle(), "b delivered once");
    let counts = hub.delivery.counts(&q).expect("counts");
    assert_eq!(counts.retries, 2);
    assert_eq!(counts.delivered_rows, 3);
    assert_eq!(
        (counts.failed_rows, counts.dead_letters, counts.pending_rows),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let hub = Hub::open(fast());
    let q = queue("rule/after/0");
    let pause = Duration::from_millis(300);
    let (destination, mut probe) = Scripted::new(
        vec![Step::Fail(DeliveryError::RetryAfter(
            pause,
            "slow down".into(),
        ))],
        Step::Ok,
    );
    hub.delivery.attach(q.clone(), destination, Vec::new());
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("a", 1))])
        .await
        .expect("enqueue");
    let first = probe.next().await;
    let second = probe.next().await;
    assert_eq!(first.ids, second.ids);
    assert!(
        second.at - first.at >= pause,
        "retried after {:?}",
        second.at - first.at
    );
    hub.delivery.shutdown().await;
    assert_eq!(hub.delivery.counts(&q).expect("counts").retries, 1);
}

#[tokio::test]
async fn permanent_failure_goes_to_the_error_queue_and_the_dead_letters() {
    let hub = Hub::open(fast());
    let (q, errors) = (queue("rule/perm/0"), queue("rule/perm/error/0"));
    let (failing, mut failing_probe) = Scripted::new(vec![permanent("bad schema")], Step::Ok);
    let (error_destination, mut error_probe) = Scripted::ok();
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("a", 2))])
        .await
        .expect("enqueue");
    hub.delivery
        .attach(q.clone(), failing, vec![errors.clone()]);
    hub.delivery
        .attach(errors.clone(), error_destination, Vec::new());
    assert_eq!(failing_probe.next().await.ids, ["a-0", "a-1"]);
    // The error queue receives the same rows, same ids.
    assert_eq!(error_probe.next().await.ids, ["a-0", "a-1"]);
    hub.delivery.shutdown().await;
    assert!(
        failing_probe.is_idle(),
        "a permanent failure is not retried"
    );

    let counts = hub.delivery.counts(&q).expect("counts");
    assert_eq!(counts.failed_rows, 2);
    assert_eq!(counts.retries, 0);
    assert_eq!((counts.pending_entries, counts.pending_bytes), (0, 0));
    assert_eq!(counts.dead_letters, 1);
    assert_eq!(
        hub.delivery
            .counts(&errors)
            .expect("error queue")
            .delivered_rows,
        2
    );

    let listed = hub.delivery.dead_letters(Some(&q), 0, 10).expect("list");
    assert_eq!(listed.len(), 1);
    let summary = &listed[0];
    assert_eq!((summary.rows, summary.attempts), (2, 1));
    assert_eq!(summary.error, "bad schema");
    assert!(summary.failed_at_ms > 0);
    let letter = hub
        .delivery
        .dead_letter(&q, summary.seq)
        .expect("read")
        .expect("present");
    assert_eq!(
        letter.envelope,
        envelope_ids_only(&letter.envelope, &["a-0", "a-1"])
    );
    assert!(letter.first_failure_ms <= letter.last_failure_ms);
    assert!(
        hub.delivery
            .dead_letter(&q, summary.seq + 100)
            .expect("read")
            .is_none()
    );
    assert_eq!(
        hub.delivery.dead_letters(None, 0, 10).expect("all").len(),
        1
    );
    assert!(
        hub.delivery
            .dead_letters(None, 1, 10)
            .expect("offset")
            .is_empty()
    );

    // Dead letters survive a restart.
    let hub = hub.restart(fast()).await;
    assert_eq!(hub.delivery.counts(&q).expect("recovered").dead_letters, 1);
    assert_eq!(
        hub.delivery
            .dead_letters(Some(&q), 0, 10)
            .expect("list")
            .len(),
        1
    );
}

/// Asserts `envelope` has exactly these row ids and returns it.
fn envelope_ids_only(envelope: &eddy_delivery::Envelope, ids: &[&str]) -> eddy_delivery::Envelope {
    assert_eq!(common::ids(envelope), ids);
    envelope.clone()
}

#[tokio::test]
async fn retries_stop_after_retry_for() {
    let settings = DeliverySettings {
        retry_for: Duration::from_millis(50),
        ..fast()
    };
    let hub = Hub::open(settings);
    let (q, errors) = (queue("rule/expire/0"), queue("rule/expire/error/0"));
    let (failing, mut failing_probe) = Scripted::new(Vec::new(), retry("unreachable"));
    let (error_destination, mut error_probe) = Scripted::ok();
    hub.delivery
        .attach(q.clone(), failing, vec![errors.clone()]);
    hub.delivery
        .attach(errors.clone(), error_destination, Vec::new());
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("a", 1))])
        .await
        .expect("enqueue");
    assert_eq!(error_probe.next().await.ids, ["a-0"]);
    hub.delivery.shutdown().await;
    let mut attempts = 0;
    while !failing_probe.is_idle() {
        attempts += 1;
    }
    assert!(attempts >= 1);
    let counts = hub.delivery.counts(&q).expect("counts");
    assert_eq!(counts.failed_rows, 1);
    assert!(counts.retries >= 1);
    assert_eq!((counts.pending_entries, counts.dead_letters), (0, 1));
    let listed = hub.delivery.dead_letters(Some(&q), 0, 10).expect("list");
    assert!(
        listed[0].error.starts_with("gave up after"),
        "{}",
        listed[0].error
    );
    assert!(
        listed[0].error.ends_with("unreachable"),
        "{}",
        listed[0].error
    );
    assert_eq!(u64::from(listed[0].attempts), counts.retries + 1);
}

#[tokio::test]
async fn rejected_rows_alone_are_dead_lettered() {
    let hub = Hub::open(fast());
    let (q, errors) = (queue("rule/reject/0"), queue("rule/reject/error/0"));
    let (partial, mut probe) = Scripted::new(
        vec![Step::Fail(DeliveryError::Rejected(vec![(
            1,
            "too big".into(),
        )]))],
        Step::Ok,
    );
    let (error_destination, mut error_probe) = Scripted::ok();
    hub.delivery
        .attach(q.clone(), partial, vec![errors.clone()]);
    hub.delivery
        .attach(errors.clone(), error_destination, Vec::new());
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("a", 3))])
        .await
        .expect("enqueue");
    assert_eq!(probe.next().await.ids.len(), 3);
    assert_eq!(error_probe.next().await.ids, ["a-1"]);
    hub.delivery.shutdown().await;
    assert!(probe.is_idle(), "the accepted rows are not sent again");
    let counts = hub.delivery.counts(&q).expect("counts");
    assert_eq!((counts.delivered_rows, counts.failed_rows), (2, 1));
    let listed = hub.delivery.dead_letters(Some(&q), 0, 10).expect("list");
    assert_eq!(listed[0].rows, 1);
    assert!(listed[0].error.contains("too big"), "{}", listed[0].error);
}

#[tokio::test]
async fn redrive_one_then_all_back_to_the_tail() {
    let settings = DeliverySettings {
        max_batch_rows: 2,
        ..fast()
    };
    let hub = Hub::open(settings);
    let q = queue("rule/redrive/0");
    for tag in ["a", "b", "c"] {
        hub.delivery
            .enqueue(vec![(q.clone(), envelope(tag, 2))])
            .await
            .expect("enqueue");
    }
    let (destination, mut probe) =
        Scripted::new(vec![permanent("no a"), permanent("no b")], Step::Ok);
    hub.delivery.attach(q.clone(), destination, Vec::new());
    let seen: Vec<Vec<String>> = probe.rows(6).await.into_iter().map(|a| a.ids).collect();
    assert_eq!(seen, [["a-0", "a-1"], ["b-0", "b-1"], ["c-0", "c-1"]]);
    // a and b were dead-lettered (in order) before c was attempted.
    let listed = hub.delivery.dead_letters(Some(&q), 0, 10).expect("list");
    let errors: Vec<&str> = listed.iter().map(|d| d.error.as_str()).collect();
    assert_eq!(errors, ["no a", "no b"]);
    assert_eq!(
        hub.delivery.dead_letters(Some(&q), 1, 1).expect("page")[0].error,
        "no b"
    );

    let moved = hub
        .delivery
        .redrive(&q, Some(listed[1].seq))
        .await
        .expect("redrive b");
    assert_eq!(moved, 1);
    assert_eq!(probe.next().await.ids, ["b-0", "b-1"]);
    let moved = hub.delivery.redrive(&q, None).await.expect("redrive all");
    assert_eq!(moved, 1);
    assert_eq!(probe.next().await.ids, ["a-0", "a-1"]);
    assert_eq!(
        hub.delivery.redrive(&q, None).await.expect("nothing left"),
        0
    );
    assert_eq!(
        hub.delivery
            .redrive(&q, Some(12345))
            .await
            .expect("unknown"),
        0
    );
    hub.delivery.shutdown().await;
    assert!(
        hub.delivery
            .dead_letters(Some(&q), 0, 10)
            .expect("list")
            .is_empty()
    );
    let counts = hub.delivery.counts(&q).expect("counts");
    assert_eq!(
        (
            counts.dead_letters,
            counts.failed_rows,
            counts.delivered_rows
        ),
        (0, 4, 6)
    );
}

#[tokio::test]
async fn a_panicking_destination_is_retried() {
    let hub = Hub::open(fast());
    let q = queue("rule/panic/0");
    let (destination, mut probe) = Scripted::new(vec![Step::Panic, Step::Panic], Step::Ok);
    hub.delivery.attach(q.clone(), destination, Vec::new());
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("a", 1))])
        .await
        .expect("enqueue");
    let attempts = probe.rows(3).await;
    assert!(attempts.iter().all(|a| a.ids == ["a-0"]));
    assert_eq!(
        hub.delivery.attached(),
        std::slice::from_ref(&q),
        "the worker survived"
    );
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("b", 1))])
        .await
        .expect("enqueue");
    assert_eq!(probe.next().await.ids, ["b-0"]);
    hub.delivery.shutdown().await;
    let counts = hub.delivery.counts(&q).expect("counts");
    assert_eq!((counts.retries, counts.delivered_rows), (2, 2));
}

#[tokio::test]
async fn attach_again_swaps_the_destination() {
    let hub = Hub::open(fast());
    let q = queue("rule/swap/0");
    let (first, mut first_probe) = Scripted::ok();
    let (second, mut second_probe) = Scripted::ok();
    hub.delivery.attach(q.clone(), first, Vec::new());
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("a", 1))])
        .await
        .expect("enqueue");
    assert_eq!(first_probe.next().await.ids, ["a-0"]);
    hub.delivery.attach(q.clone(), second, Vec::new());
    hub.delivery
        .enqueue(vec![(q.clone(), envelope("b", 1))])
        .await
        .expect("enqueue");
    assert_eq!(second_probe.next().await.ids, ["b-0"]);
    hub.delivery.shutdown().await;
    assert!(first_probe.is_idle());
}
