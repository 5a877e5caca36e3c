//! The running engine: messages offered as the broker offers them, rules loaded and
//! replaced while messages flow, republished output collected from a recording publisher
//! (the end-to-end tests in tests/mqtt/rules.rs use the real broker).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eddy_core::{Message, MessageTap, Publish, PublishError, QoS, Topic};
use eddy_rules::runtime::{RULE_PUBLISHER_PREFIX, SampleMessage, dry_run};
use eddy_rules::{EngineSettings, RuleDefinition, RuleEngine};
use tokio::sync::mpsc;

#[derive(Debug)]
struct Recorder(mpsc::UnboundedSender<Message>);

#[async_trait::async_trait]
impl Publish for Recorder {
    async fn publish(&self, message: Message) -> Result<(), PublishError> {
        self.0
            .send(message)
            .map_err(|_| PublishError("recorder closed".into()))
    }
}

fn engine(settings: EngineSettings) -> (Arc<RuleEngine>, mpsc::UnboundedReceiver<Message>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let engine = RuleEngine::start(settings, Arc::new(Recorder(tx))).expect("engine thread");
    (engine, rx)
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
    if let Some(wait) = engine.offer(m, Some("127.0.0.1".parse().expect("ip"))) {
        wait.await;
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Message>) -> Message {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a republished message within 30 s")
        .expect("recorder open")
}

#[tokio::test]
async fn a_rule_republishes_what_passes_its_where() {
    let (engine, mut rx) = engine(EngineSettings::default());
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
    for t in [31, 40] {
        let m = next(&mut rx).await;
        assert_eq!(m.topic.as_str(), "ABCDE12345/dev2/alerts");
        assert_eq!(m.publisher, format!("{RULE_PUBLISHER_PREFIX}hot"));
        assert_eq!(m.qos, QoS::AtLeastOnce, "the source message's QoS");
        let row: serde_json::Value = serde_json::from_slice(&m.payload).expect("JSON");
        assert_eq!(
            row,
            serde_json::json!({"temp": t, "dev": "dev1", "ip": "127.0.0.1"})
        );
    }
    // Republished messages never feed rules again, and nothing else came out.
    let again = Arc::new(next_like(
        &message("ABCDE12345/dev1/data", r#"{"temp":50}"#),
        "$rule/hot",
    ));
    assert!(engine.offer(&again, None).is_none());
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

#[tokio::test]
async fn topic_variables_and_qos_follow_each_row() {
    let (engine, mut rx) = engine(EngineSettings::default());
    let failed = engine.load(&[rule(
        "route",
        "SELECT house, t FROM 'houses/+/temp'",
        "house_monitor/${house}/app",
    )]);
    assert!(failed.is_empty(), "{failed:?}");
    let qos0 = Arc::new(Message {
        qos: QoS::AtMostOnce,
        ..(*message("houses/h1/temp", r#"{"house":"tencent","t":41}"#)).clone()
    });
    offer(&engine, &qos0).await;
    // No "house": this row cannot be routed; counted, and the next one still goes.
    offer(&engine, &message("houses/h2/temp", r#"{"t":1}"#)).await;
    offer(
        &engine,
        &message("houses/h3/temp", r#"{"house":"h3","t":2}"#),
    )
    .await;
    let first = next(&mut rx).await;
    assert_eq!(
        (first.topic.as_str(), first.qos),
        ("house_monitor/tencent/app", QoS::AtMostOnce)
    );
    let second = next(&mut rx).await;
    assert_eq!(
        (second.topic.as_str(), second.qos),
        ("house_monitor/h3/app", QoS::AtLeastOnce)
    );
    let counts = engine.counts("route").expect("counted");
    assert_eq!((counts.action_messages, counts.action_errors), (3, 1));
}

#[tokio::test]
async fn replacing_and_disabling_rules_while_messages_flow_loses_none() {
    // Batches of up to 7 rows so many flushes interleave with the reloads.
    let (engine, mut rx) = engine(EngineSettings {
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

#[tokio::test]
async fn ten_thousand_rules_load_and_only_matching_ones_run() {
    let (engine, mut rx) = engine(EngineSettings::default());
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
    let ids: Vec<_> = [next(&mut rx).await, next(&mut rx).await]
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
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
