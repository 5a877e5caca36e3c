//! The running engine: messages offered as the broker offers them, rules loaded and
//! replaced while messages flow, each action's rows collected from a recording destination
//! behind the real delivery layer (the end-to-end tests in tests/mqtt/rules.rs run the
//! real broker and the real plugins).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eddy_core::destination::{DeliveryError, Destination, Envelope, Row};
use eddy_core::{Message, MessageTap, QoS, Topic};
use eddy_delivery::{Delivery, DeliverySettings, QueueId};
use eddy_rules::runtime::{RULE_PUBLISHER_PREFIX, SampleMessage, dry_run};
use eddy_rules::{
    Action, DestinationFactory, DestinationFuture, EngineSettings, RuleDefinition, RuleEngine,
};
use tokio::sync::mpsc;

/// Sends every delivered row, with its queue, to the test.
#[derive(Debug)]
struct Recorder(String, mpsc::UnboundedSender<(String, Row)>);

#[async_trait::async_trait]
impl Destination for Recorder {
    async fn deliver(&self, batch: &Arc<Envelope>) -> Result<(), DeliveryError> {
        for row in &batch.rows {
            self.1
                .send((self.0.clone(), row.clone()))
                .map_err(|_| DeliveryError::Permanent("test over".into()))?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Factory(mpsc::UnboundedSender<(String, Row)>);

impl DestinationFactory for Factory {
    fn start(&self, queue: &QueueId, _rule: &str, _action: &Action) -> DestinationFuture {
        let destination = Arc::new(Recorder(queue.to_string(), self.0.clone()));
        Box::pin(async move { Ok(destination as Arc<dyn Destination>) })
    }
}

struct Harness {
    engine: Arc<RuleEngine>,
    rx: mpsc::UnboundedReceiver<(String, Row)>,
    _dir: tempfile::TempDir,
}

fn engine(settings: EngineSettings) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = eddy_queue::Log::open(dir.path()).expect("log");
    let delivery = Delivery::open(&log, DeliverySettings::default()).expect("delivery");
    let (tx, rx) = mpsc::unbounded_channel();
    let engine =
        RuleEngine::start(settings, delivery, Arc::new(Factory(tx))).expect("engine thread");
    Harness {
        engine,
        rx,
        _dir: dir,
    }
}

fn rule(name: &str, sql: &str, to: &str) -> RuleDefinition {
    RuleDefinition {
        name: name.into(),
        sql: sql.into(),
        actions: format!(r#"[{{"republish":{{"topic":"{to}"}}}}]"#),
        error_actions: String::new(),
        enabled: true,
    }
}

fn message(topic: &str, payload: &str) -> Arc<Message> {
    Arc::new(Message {
        topic: Topic::parse(topic).expect("topic"),
        payload: Bytes::from(payload.to_owned()),
        qos: QoS::AtLeastOnce,
        retain: false,
        publisher: "ABCDE12345dev1".into(),
        received_at_ms: eddy_core::time::unix_now_ms(),
        properties: None,
    })
}

async fn offer(engine: &RuleEngine, m: &Arc<Message>) {
    let offered = engine.offer(m, Some("127.0.0.1".parse().expect("ip")));
    if let Some(wait) = offered.backpressure {
        wait.await;
    }
    if let Some(durable) = offered.handover {
        // Awaited as the broker awaits it before a PUBACK: the output is in the queues.
        durable.await.expect("rule output queued");
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, Row)>) -> Row {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a delivered row within 30 s")
        .expect("recorder open")
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_hands_its_actions_what_passes_its_where() {
    let Harness {
        engine,
        mut rx,
        _dir,
    } = engine(EngineSettings::default());
    let failed = engine.load(&[rule(
        "hot",
        "SELECT temp, deviceName() AS dev, clientip() AS ip FROM 'ABCDE12345/+/data' WHERE temp > 30",
        "ABCDE12345/dev2/alerts",
    )]);
    assert!(failed.is_empty(), "{failed:?}");
    for t in [20, 31, 25, 40] {
        offer(
            &engine,
            &message("ABCDE12345/dev1/data", &format!(r#"{{"temp":{t}}}"#)),
        )
        .await;
    }
    offer(&engine, &message("ABCDE12345/dev1/other", r#"{"temp":99}"#)).await;
    let mut ids = Vec::new();
    for t in [31, 40] {
        let m = next(&mut rx).await;
        assert_eq!(m.meta.topic, "ABCDE12345/dev1/data");
        assert_eq!(
            (m.meta.product_id.as_str(), m.meta.device_name.as_str()),
            ("ABCDE12345", "dev1")
        );
        assert_eq!(m.meta.qos, 1, "the source message's QoS");
        assert!(m.json);
        ids.push(m.id.clone());
        let row: serde_json::Value = serde_json::from_slice(&m.payload).expect("JSON");
        assert_eq!(
            row,
            serde_json::json!({"temp": t, "dev": "dev1", "ip": "127.0.0.1"})
        );
    }
    // Republished messages never feed rules again, and nothing else came out.
    let again = Arc::new(next_like(
        &message("ABCDE12345/dev1/data", r#"{"temp":50}"#),
        &format!("{RULE_PUBLISHER_PREFIX}hot"),
    ));
    let offered = engine.offer(&again, None);
    assert!(offered.backpressure.is_none() && offered.handover.is_none());
    assert_ne!(ids[0], ids[1], "each row has its own id");
    let counts = engine.counts("hot").expect("counted");
    assert_eq!(
        (counts.matched, counts.passed, counts.action_messages),
        (4, 2, 2)
    );
    assert!(rx.try_recv().is_err());
}

fn next_like(m: &Message, publisher: &str) -> Message {
    Message {
        publisher: publisher.into(),
        ..m.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_and_error_action_has_its_own_queue_and_binary_rows_pass_through() {
    let Harness {
        engine,
        mut rx,
        _dir,
    } = engine(EngineSettings::default());
    let failed = engine.load(&[RuleDefinition {
        name: "two".into(),
        sql: "SELECT * FROM 'bin/#'".into(),
        actions: r#"[{"republish":{"topic":"x/a"}},{"forward":{"api":"http://127.0.0.1:9/h"}}]"#
            .into(),
        error_actions: r#"[{"republish":{"topic":"x/err"}}]"#.into(),
        enabled: true,
    }]);
    assert!(failed.is_empty(), "{failed:?}");
    let qos0 = Arc::new(Message {
        qos: QoS::AtMostOnce,
        payload: Bytes::from_static(&[0xff, 0x00]),
        ..(*message("bin/x", "")).clone()
    });
    offer(&engine, &qos0).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(
            tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("row")
                .expect("open"),
        );
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got[0].0, "rule/two/0");
    assert_eq!(got[1].0, "rule/two/1");
    for (_, row) in &got {
        assert_eq!(row.payload, [0xff, 0x00], "a binary payload passes through");
        assert!(!row.json);
        assert_eq!(row.meta.qos, 0);
    }
    assert_eq!(got[0].1.id, got[1].1.id, "one id per source message");
    assert_eq!(engine.counts("two").expect("counted").action_messages, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_and_disabling_rules_while_messages_flow_loses_none() {
    // Batches of up to 7 rows so many flushes interleave with the reloads.
    let Harness {
        engine,
        mut rx,
        _dir,
    } = engine(EngineSettings {
        batch_rows: 7,
        batch_time: Duration::from_millis(1),
        queue: 16,
    });
    let v1 = rule("r", "SELECT n, 1 AS v FROM 'p/+/d'", "out/r");
    let v2 = rule("r", "SELECT n, 2 AS v FROM 'p/+/d'", "out/r");
    engine.load(std::slice::from_ref(&v1));
    let total = 500;
    for n in 0..total {
        if n % 50 == 25 {
            engine.load(std::slice::from_ref(if n % 100 == 25 { &v2 } else { &v1 }));
        }
        offer(&engine, &message("p/dev/d", &format!(r#"{{"n":{n}}}"#))).await;
    }
    let mut seen = vec![false; total];
    for _ in 0..total {
        let row: serde_json::Value =
            serde_json::from_slice(&next(&mut rx).await.payload).expect("JSON");
        let n = row["n"].as_u64().expect("n") as usize;
        assert!(!seen[n], "message {n} twice");
        seen[n] = true;
        assert!(matches!(row["v"].as_u64(), Some(1 | 2)));
    }
    // Disabled: matching messages are no longer offered, nothing more comes out.
    engine.load(&[RuleDefinition {
        enabled: false,
        ..v2.clone()
    }]);
    assert!(
        engine
            .offer(&message("p/dev/d", r#"{"n":1}"#), None)
            .handover
            .is_none()
    );
    assert_eq!(
        engine.counts("r").expect("kept while stored").matched,
        total as u64
    );
    engine.load(&[]);
    assert!(
        engine.counts("r").is_none(),
        "deleted rules lose their counters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_rules_load_and_only_matching_ones_run() {
    let Harness {
        engine,
        mut rx,
        _dir,
    } = engine(EngineSettings::default());
    let rules: Vec<_> = (0..10_000)
        .map(|i| {
            rule(
                &format!("r{i}"),
                &format!("SELECT {i} AS id FROM 'p/dev{i}/+' WHERE t > 0"),
                "out",
            )
        })
        .collect();
    assert!(engine.load(&rules).is_empty());
    offer(&engine, &message("p/dev1234/x", r#"{"t":1}"#)).await;
    offer(&engine, &message("p/dev9999/x", r#"{"t":0}"#)).await;
    offer(&engine, &message("p/dev7/x", r#"{"t":1}"#)).await;
    let mut ids: Vec<_> = [next(&mut rx).await, next(&mut rx).await]
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    // Two rules, two queues, two workers: no order between them.
    ids.sort();
    assert_eq!(ids, [r#"{"id":1234}"#, r#"{"id":7}"#]);
    assert_eq!(engine.counts("r9999").expect("stored").matched, 1);
    assert_eq!(engine.counts("r5").expect("stored").matched, 0);
}

#[test]
fn a_dry_run_shows_rows_and_what_actions_would_send() {
    let sample = |topic: &str, payload: &[u8]| SampleMessage {
        topic: Topic::parse(topic).expect("topic"),
        payload: Bytes::copy_from_slice(payload),
        client_id: "ABCDE12345dev1".into(),
        client_ip: None,
        qos: QoS::AtMostOnce,
    };
    let run = dry_run(
        "SELECT *, deviceName() AS dev FROM 'ABCDE12345/+/data' WHERE temp > 30",
        r#"[{"republish":{"topic":"ABCDE12345/dev2/x"}}]"#,
        &[
            sample("ABCDE12345/dev1/data", br#"{"temp":31}"#),
            sample("ABCDE12345/dev1/data", br#"{"temp":3}"#),
            sample("ABCDE12345/dev1/other", br#"{"temp":99}"#),
        ],
    )
    .expect("runs");
    assert_eq!(run.matched, [true, true, false]);
    assert_eq!(run.rows.len(), 1);
    assert_eq!(run.actions[0].target, "ABCDE12345/dev2/x");
    assert_eq!(run.actions[0].payloads, [r#"{"dev":"dev1","temp":31}"#]);
    let binary = dry_run(
        "SELECT * FROM 'a/#'",
        r#"[{"republish":{"topic":"b"}}]"#,
        &[sample("a/x", &[0xff, 0x00])],
    )
    .expect("runs");
    assert_eq!(binary.actions[0].payloads, ["base64:/wA="]);
    let err = dry_run("SELECT FROM", "", &[]).expect_err("bad SQL");
    assert_eq!(err.tencent_code(), "InvalidParameterValue.InvalidSQL");
}
