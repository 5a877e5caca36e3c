//! The plugin host with real components: the embedded built-ins and the hostile fixture
//! (`plugins/hostile`, built for wasm32-wasip2 by this crate's build script).

use std::sync::Arc;
use std::time::Duration;

use eddy_core::destination::{DeliveryError, Destination, Envelope};
use eddy_core::{QoS, TopicFilter};
use eddy_plugin_host::{Grants, HostSettings, PluginHost};
use serde_json::json;

mod common;
use common::{host, row};

fn envelope(payloads: &[&str]) -> Arc<Envelope> {
    Arc::new(Envelope {
        columns: vec!["k".into(), "v".into()],
        rows: payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                row(
                    format!("m{i}-0"),
                    p.as_bytes().to_vec(),
                    true,
                    1,
                    i as u64 + 1,
                )
            })
            .collect(),
    })
}

/// `plugins/hostile`, built with the built-ins by this crate's build script.
fn hostile_wasm() -> Vec<u8> {
    std::fs::read(eddy_plugin_host::builtin::HOSTILE_FIXTURE).expect("hostile wasm")
}

async fn hostile(
    host: &Arc<PluginHost>,
    name: &str,
    mode: &str,
    grants: Grants,
) -> Arc<eddy_plugin_host::PluginDestination> {
    let plugin = host.load("test:hostile", &hostile_wasm()).expect("load");
    let config = serde_json::json!({"mode": mode, "topic": "ok/out"}).to_string();
    host.destination(plugin, name, "$rule/test", config, grants)
        .await
        .expect("start")
}

fn ok_grants() -> Grants {
    Grants {
        mqtt_topics: vec![TopicFilter::parse("ok/#").expect("filter")],
        ..Grants::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_fills_topic_variables_keeps_qos_and_rejects_rows_it_cannot_route() {
    let (host, recorder) = host(HostSettings::default());
    let plugin = host.load_builtin("republish").expect("builtin");
    let template = "out/${k}/data";
    let destination = host
        .destination(
            plugin,
            "rule/r/0",
            "$rule/r",
            serde_json::json!({ "topic": template }).to_string(),
            Grants::for_republish(template).expect("grant"),
        )
        .await
        .expect("start");
    let batch = envelope(&[
        r#"{"k":"a","v":1}"#,
        r#"{"v":2}"#,
        r#"{"k":7,"v":3}"#,
        r#"{"v":[1,{"k":"no"}],"k":1.5}"#,
        r#"{"k":{"x":1}}"#,
        r#"{"k":"x","k":true}"#,
    ]);
    let outcome = destination.deliver(&batch).await;
    match outcome {
        Err(DeliveryError::Rejected(rows)) => {
            let indexes: Vec<usize> = rows.iter().map(|r| r.0).collect();
            assert_eq!(indexes, [1, 4]);
            assert!(rows.iter().all(|r| r.1.contains("\"k\"")), "{rows:?}");
        }
        other => panic!("expected two rejected rows, got {other:?}"),
    }
    let published = recorder.take();
    let topics: Vec<&str> = published.iter().map(|m| m.topic.as_str()).collect();
    // Strings as they are, numbers and booleans as JSON text; the last of a repeated field.
    assert_eq!(
        topics,
        ["out/a/data", "out/7/data", "out/1.5/data", "out/true/data"]
    );
    assert!(
        published
            .iter()
            .all(|m| m.qos == QoS::AtLeastOnce && m.publisher == "$rule/r")
    );
    assert_eq!(&published[0].payload[..], br#"{"k":"a","v":1}"#);

    // A row whose variable would leave the granted shape is refused by the grant.
    let outcome = destination.deliver(&envelope(&[r#"{"k":"a/b"}"#])).await;
    assert!(
        matches!(&outcome, Err(DeliveryError::Permanent(why)) if why.contains("permission denied")),
        "{outcome:?}"
    );
    assert!(recorder.take().is_empty());
    let counts = host.counts("rule/r/0").expect("metrics").counts();
    assert_eq!((counts.calls, counts.rows, counts.traps), (2, 7, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_to_a_fixed_topic_hands_the_rows_over_unchanged() {
    let (host, recorder) = host(HostSettings::default());
    let rows = [r#"{"k":"a"}"#, r#"{"k":"b"}"#, r#"{"k":"c"}"#];
    for (config, qos) in [
        (json!({ "topic": "out/all" }), QoS::AtLeastOnce),
        (json!({ "topic": "out/all", "qos": 0 }), QoS::AtMostOnce),
    ] {
        let plugin = host.load_builtin("republish").expect("builtin");
        let destination = host
            .destination(
                plugin,
                "rule/fixed/0",
                "$rule/fixed",
                config.to_string(),
                Grants::for_republish("out/all").expect("grant"),
            )
            .await
            .expect("start");
        destination
            .deliver(&envelope(&rows))
            .await
            .expect("delivered");
        let published = recorder.take();
        let payloads: Vec<&[u8]> = published.iter().map(|m| &m.payload[..]).collect();
        let expected: Vec<&[u8]> = rows.iter().map(|r| r.as_bytes()).collect();
        assert_eq!(payloads, expected, "{config}");
        assert!(
            published.iter().all(|m| m.topic.as_str() == "out/all"
                && m.qos == qos
                && m.publisher == "$rule/fixed"),
            "{config}: {published:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_variable_used_twice_is_filled_twice() {
    let (host, recorder) = host(HostSettings::default());
    let plugin = host.load_builtin("republish").expect("builtin");
    let template = "out/${k}/${k}";
    let destination = host
        .destination(
            plugin,
            "rule/twice/0",
            "$rule/twice",
            json!({ "topic": template }).to_string(),
            Grants::for_republish(template).expect("grant"),
        )
        .await
        .expect("start");
    destination
        .deliver(&envelope(&[r#"{"k":"a"}"#]))
        .await
        .expect("delivered");
    let published = recorder.take();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].topic.as_str(), "out/a/a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_connector_calls_are_refused_as_invalid() {
    let (host, recorder) = host(HostSettings::default());
    let grants = Grants {
        kafka_brokers: Some("127.0.0.1:9".into()),
        kafka_topics: vec!["ok/out".into()],
        ..ok_grants()
    };
    let destination = hostile(&host, "bad-calls", "bad-calls", grants).await;
    let outcome = destination.deliver(&envelope(&["{}", "{}"])).await;
    let Err(DeliveryError::Permanent(why)) = outcome else {
        panic!("expected the plugin's report, got {outcome:?}");
    };
    let answers: Vec<&str> = why.split(" / ").collect();
    assert_eq!(answers.len(), 4, "{why}");
    for (answer, says) in
        answers
            .iter()
            .zip(["past the batch", "qos 3", "outside", "1 items for 2"])
    {
        assert!(answer.contains("Invalid") && answer.contains(says), "{why}");
    }
    assert!(
        recorder.take().is_empty(),
        "nothing published by refused calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_is_refused_at_start() {
    let (host, _) = host(HostSettings::default());
    let plugin = host.load_builtin("republish").expect("builtin");
    let error = host
        .destination(
            plugin,
            "bad",
            "$rule/bad",
            r#"{"topic":"a","qos":2}"#.into(),
            Grants::default(),
        )
        .await
        .expect_err("qos 2 refused");
    assert!(error.to_string().contains("qos"), "{error}");
    assert!(host.load("junk", b"not wasm").is_err());
    assert!(host.load_builtin("teleport").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outside_the_grants_fails_with_a_permission_error_the_plugin_sees() {
    let (host, recorder) = host(HostSettings::default());
    let destination = hostile(&host, "grant", "grant", ok_grants()).await;
    let outcome = destination.deliver(&envelope(&["{}"])).await;
    match outcome {
        Err(DeliveryError::Permanent(why)) => {
            // publish, publish-rows and produce-packed: each refused by its grant.
            let answers: Vec<&str> = why.split(" / ").collect();
            assert_eq!(answers.len(), 3, "{why}");
            assert!(
                answers[0].contains("PermissionDenied") && answers[0].contains("not/granted"),
                "{why}"
            );
            assert!(
                answers[1].contains("PermissionDenied") && answers[1].contains("not/granted/rows"),
                "{why}"
            );
            assert!(
                answers[2].contains("PermissionDenied") && answers[2].contains("Kafka"),
                "{why}"
            );
        }
        other => panic!("expected the plugin's report, got {other:?}"),
    }
    assert!(
        recorder.take().is_empty(),
        "nothing published outside the grant"
    );
    let metrics = host.counts("grant").expect("metrics");
    assert_eq!(metrics.plugin_counter("grant_checks"), 1);
    assert_eq!(metrics.counts().traps, 0);
}

/// Each hostile mode traps its own instance only; the host restarts it and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loops_memory_bombs_and_panics_cost_only_their_instance() {
    let settings = HostSettings {
        cpu_time: Duration::from_millis(300),
        memory_bytes: 32 << 20,
        restart_initial: Duration::from_millis(1),
        ..HostSettings::default()
    };
    let (host, recorder) = host(settings);
    let control = hostile(&host, "control", "ok", ok_grants()).await;
    for (mode, needle) in [
        ("spin", "interrupt"),
        ("memory", "memory"),
        ("panic", "unreachable"),
    ] {
        let destination = hostile(&host, mode, mode, ok_grants()).await;
        for attempt in 1..=2u64 {
            let outcome = destination.deliver(&envelope(&["{}"])).await;
            match &outcome {
                Err(DeliveryError::Retry(why)) => {
                    assert!(why.contains("trapped"), "{mode}: {why}");
                    assert!(why.to_lowercase().contains(needle), "{mode}: {why}");
                }
                other => panic!("{mode}: expected a retryable trap, got {other:?}"),
            }
            let counts = host.counts(mode).expect("metrics").counts();
            assert_eq!(counts.traps, attempt, "{mode}");
            assert_eq!(
                counts.restarts,
                attempt - 1,
                "{mode}: restarted before each retry"
            );
        }
        // The well-behaved destination is unaffected.
        control
            .deliver(&envelope(&[mode]))
            .await
            .expect("control delivers");
    }
    let out: Vec<Vec<u8>> = recorder
        .take()
        .into_iter()
        .map(|m| m.payload.to_vec())
        .collect();
    assert_eq!(
        out,
        [b"spin".to_vec(), b"memory".to_vec(), b"panic".to_vec()]
    );
}

/// A plugin spinning inside `deliver` does not hold up another destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_plugin_does_not_block_others() {
    let settings = HostSettings {
        cpu_time: Duration::from_secs(120),
        ..HostSettings::default()
    };
    let (host, recorder) = host(settings);
    let spinner = hostile(&host, "spinner", "spin", ok_grants()).await;
    let control = hostile(&host, "control", "ok", ok_grants()).await;
    let spinning = tokio::spawn(async move { spinner.deliver(&envelope(&["x"])).await });
    for i in 0..20 {
        control
            .deliver(&envelope(&[&format!("{i}")]))
            .await
            .expect("control delivers");
    }
    assert_eq!(recorder.take().len(), 20);
    assert!(
        !spinning.is_finished(),
        "the spinner is still spinning (120 s budget)"
    );
    spinning.abort();
}
