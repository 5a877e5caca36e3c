//! Tencent's `ckafka` action end to end, against the real Kafka-compatible broker (tansu)
//! `scripts/test` starts: every row arrives once as a record in Tencent's CKafka format,
//! keyed by device, with its stable id in a header; a topic outside a destination's grants
//! is refused into the dead letters.

use std::collections::BTreeSet;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use rumqttc::{Packet, QoS};
use serde_json::{Value, json};

use crate::{STEP, connected, fresh, next_incoming};

/// The broker from the environment, or `None` to skip outside CI.
fn broker() -> Option<String> {
    match std::env::var("EDDY_TEST_KAFKA") {
        Ok(b) if !b.is_empty() => Some(b),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("EDDY_TEST_KAFKA is not set but CI=true: start it (scripts/start-kafka.sh)")
        }
        _ => {
            eprintln!(
                "Kafka destination e2e skipped: set EDDY_TEST_KAFKA (scripts/start-kafka.sh prints it)"
            );
            None
        }
    }
}

async fn create_topic(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(STEP)),
        )
        .await
        .unwrap();
    for r in results {
        r.unwrap();
    }
}

/// Reads `topic` (partition 0) from the start until `count` records arrived.
async fn read(brokers: &str, topic: &str, count: usize) -> Vec<(String, Value, String)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("eddy-test-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&partitions).unwrap();
    let deadline = Instant::now() + STEP;
    let mut out = Vec::new();
    while out.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} records arrived", out.len()))
            .unwrap();
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        let value: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let headers = message.headers().unwrap();
        let id = headers
            .iter()
            .find(|h| h.key == "eddy-message-id")
            .and_then(|h| h.value)
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
            .unwrap();
        out.push((key, value, id));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ckafka_action_produces_tencent_records_to_a_real_broker() {
    let Some(brokers) = broker() else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let topic = format!("eddy-iot-{}-{nanos}", std::process::id());
    create_topic(&brokers, &topic).await;

    let destinations = format!(
        r#"
[[destinations]]
name = "ckafka"
plugin = "builtin:kafka"
[destinations.grants]
kafka-brokers = {brokers:?}

[[destinations]]
name = "sneaky"
plugin = "builtin:kafka"
config = {{ topic = "not-granted" }}
[destinations.grants]
kafka-brokers = {brokers:?}
kafka-topics = [{topic:?}]
"#
    );
    let (_dir, hub, api, pid, psk) = crate::hub_with_device(&destinations, "kafka").await;
    let rule = |name: &str, actions: Value| {
        json!({
            "RuleName": name,
            "TopicRulePayload": {
                "Sql": BASE64.encode(format!("SELECT temp, deviceName() AS dev FROM '{pid}/+/event'")),
                "Actions": actions.to_string(),
                "RuleDisabled": false,
            },
        })
    };
    // Tencent's shape: the instance is a configured destination (by id or name), the topic
    // the action's own.
    let ckafka = json!([{ "ckafka": {
        "instance": { "id": "ckafka-0001", "name": "ckafka" },
        "topic": { "id": "topic-0001", "name": topic },
        "region": "ap-guangzhou",
    } }]);
    api.call("CreateTopicRule", &rule("to_kafka", ckafka))
        .await
        .expect("CreateTopicRule");
    api.call(
        "CreateTopicRule",
        &rule("to_sneaky", json!([{ "plugin": { "name": "sneaky" } }])),
    )
    .await
    .expect("CreateTopicRule");

    let (a, mut events) = connected(&hub, &fresh(&pid, "a", &psk)).await;
    const N: usize = 20;
    for n in 0..N {
        let body = json!({ "temp": n }).to_string();
        a.publish(format!("{pid}/a/event"), QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
        loop {
            if let Packet::PubAck(_) = next_incoming(&mut events).await.unwrap() {
                break;
            }
        }
    }

    let records = read(&brokers, &topic, N).await;
    let ids: BTreeSet<&str> = records.iter().map(|(_, _, id)| id.as_str()).collect();
    assert_eq!(ids.len(), N, "one record per row, each with its own id");
    let mut temps = BTreeSet::new();
    for (key, value, _) in &records {
        assert_eq!(key, &format!("{pid}/a"));
        assert_eq!(value["MsgType"], "Publish");
        assert_eq!(value["Topic"], format!("{pid}/a/event"));
        assert_eq!(value["ProductId"], pid);
        assert_eq!(value["DeviceName"], "a");
        assert!(value["Seq"].is_u64(), "{value}");
        let time = value["Time"].as_str().unwrap();
        assert!(
            time.len() == 19 && &time[4..5] == "-" && &time[10..11] == " " && &time[13..14] == ":",
            "Time is YYYY-MM-DD HH:MM:SS: {time}"
        );
        let payload = BASE64.decode(value["Payload"].as_str().unwrap()).unwrap();
        assert_eq!(value["PayloadLen"], payload.len());
        let row: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(row["dev"], "a");
        temps.insert(row["temp"].as_u64().unwrap());
    }
    assert_eq!(temps, (0..N as u64).collect::<BTreeSet<_>>());

    // The destination whose configured topic its grants do not cover: dead-lettered.
    let listed = crate::dead_letters(&api, "rule/to_sneaky/0", "the refused topic").await;
    let error = listed["DeadLetters"][0]["Error"].as_str().unwrap();
    assert!(error.contains("may not produce"), "{error}");
}
