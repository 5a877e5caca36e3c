//! The built-in `pulsar` plugin (Tencent TDMQ) and its connector, on the Pulsar binary
//! protocol.
//!
//! No Pulsar broker can be installed on this project's machines (DESIGN.md), so this is
//! NOT a test against Pulsar: the peer below is a protocol stand-in that frames and parses
//! with the Pulsar client library's own codec and Pulsar's `PulsarApi.proto` messages. It
//! answers the commands a producer needs (CONNECT, PARTITIONED_METADATA, LOOKUP, PRODUCER,
//! SEND, PING) the way Pulsar's documentation says a broker does, and records what it was
//! sent. It proves what the connector puts on the wire (topic, payload, key, properties)
//! and that only broker receipts make a delivery succeed; it cannot prove that a real
//! broker accepts it.

use std::sync::{Arc, Mutex};

use eddy_core::destination::{DeliveryError, Destination, Envelope};
use eddy_plugin_host::{Connectors, Grants, HostSettings, PluginHost};
use futures::{SinkExt as _, StreamExt as _};
use pulsar::message::{Codec, Message};
use pulsar::proto::{self, base_command::Type};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

mod common;
use common::row;

const TOPIC: &str = "persistent://public/default/iot";

/// What the stand-in received: (topic of the producer, payload, partition key, properties).
type Sent = Arc<Mutex<Vec<(String, Vec<u8>, Option<String>, Vec<(String, String)>)>>>;

fn command(kind: Type, fill: impl FnOnce(&mut proto::BaseCommand)) -> Message {
    let mut command = proto::BaseCommand {
        r#type: kind as i32,
        ..Default::default()
    };
    fill(&mut command);
    Message {
        command,
        payload: None,
    }
}

/// Accepts connections on loopback and answers like a single Pulsar broker.
async fn stand_in() -> (String, Sent) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("pulsar://{}", listener.local_addr().expect("addr"));
    let sent = Sent::default();
    let (own_url, record) = (url.clone(), sent.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(
                Framed::new(stream, Codec),
                own_url.clone(),
                record.clone(),
            ));
        }
    });
    (url, sent)
}

async fn serve(mut frames: Framed<tokio::net::TcpStream, Codec>, url: String, sent: Sent) {
    let mut producers: Vec<(u64, String)> = Vec::new();
    while let Some(Ok(message)) = frames.next().await {
        let c = &message.command;
        let reply = match Type::try_from(c.r#type) {
            Ok(Type::Connect) => command(Type::Connected, |r| {
                r.connected = Some(proto::CommandConnected {
                    server_version: "eddy-test-stand-in".into(),
                    protocol_version: c.connect.as_ref().and_then(|c| c.protocol_version),
                    max_message_size: Some(5 << 20),
                });
            }),
            Ok(Type::PartitionedMetadata) => command(Type::PartitionedMetadataResponse, |r| {
                r.partition_metadata_response =
                    Some(proto::CommandPartitionedTopicMetadataResponse {
                        partitions: Some(0),
                        request_id: c.partition_metadata.as_ref().map_or(0, |m| m.request_id),
                        response: Some(0),
                        ..Default::default()
                    });
            }),
            Ok(Type::Lookup) => command(Type::LookupResponse, |r| {
                r.lookup_topic_response = Some(proto::CommandLookupTopicResponse {
                    broker_service_url: Some(url.clone()),
                    response: Some(1), // Connect
                    request_id: c.lookup_topic.as_ref().map_or(0, |l| l.request_id),
                    authoritative: Some(true),
                    ..Default::default()
                });
            }),
            Ok(Type::Producer) => {
                let p = c.producer.as_ref().expect("producer command");
                producers.push((p.producer_id, p.topic.clone()));
                command(Type::ProducerSuccess, |r| {
                    r.producer_success = Some(proto::CommandProducerSuccess {
                        request_id: p.request_id,
                        producer_name: format!("stand-in-{}", p.producer_id),
                        last_sequence_id: Some(-1),
                        ..Default::default()
                    });
                })
            }
            Ok(Type::Send) => {
                let s = c.send.as_ref().expect("send command");
                let payload = message.payload.as_ref().expect("a SEND carries a payload");
                let topic = producers
                    .iter()
                    .find(|(id, _)| *id == s.producer_id)
                    .map(|(_, t)| t.clone())
                    .unwrap_or_default();
                let properties = payload
                    .metadata
                    .properties
                    .iter()
                    .map(|kv| (kv.key.clone(), kv.value.clone()))
                    .collect();
                sent.lock().expect("lock").push((
                    topic,
                    payload.data.clone(),
                    payload.metadata.partition_key.clone(),
                    properties,
                ));
                command(Type::SendReceipt, |r| {
                    r.send_receipt = Some(proto::CommandSendReceipt {
                        producer_id: s.producer_id,
                        sequence_id: s.sequence_id,
                        message_id: Some(proto::MessageIdData {
                            ledger_id: 1,
                            entry_id: s.sequence_id,
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                })
            }
            Ok(Type::Ping) => command(Type::Pong, |r| r.pong = Some(proto::CommandPong {})),
            _ => continue,
        };
        if frames.send(reply).await.is_err() {
            return;
        }
    }
}

fn envelope(n: usize) -> Arc<Envelope> {
    Arc::new(Envelope {
        columns: vec!["temp".into()],
        rows: (0..n)
            .map(|i| {
                let payload = format!(r#"{{"temp":{i}}}"#).into_bytes();
                row(format!("boot-{i}"), payload, true, 1, i as u64)
            })
            .collect(),
    })
}

fn grants(url: &str) -> Grants {
    Grants {
        pulsar_url: Some(url.into()),
        pulsar_topics: vec![TOPIC.into()],
        ..Grants::default()
    }
}

async fn destination(
    host: &Arc<PluginHost>,
    name: &str,
    topic: &str,
    grants: Grants,
) -> Arc<dyn Destination> {
    let plugin = host.load_builtin("pulsar").expect("built-in pulsar plugin");
    let config = serde_json::json!({ "broker": "pulsar", "topic": topic }).to_string();
    host.destination(plugin, name, "$rule/test", config, grants)
        .await
        .expect("destination") as Arc<dyn Destination>
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tdmq_rows_go_out_as_pulsar_sends_in_tencent_format() {
    let (url, sent) = stand_in().await;
    let host = PluginHost::new(HostSettings::default(), Connectors::new(None)).expect("host");
    let tdmq = destination(&host, "tdmq", TOPIC, grants(&url)).await;

    tdmq.deliver(&envelope(5))
        .await
        .expect("delivered: every send has its receipt");
    tdmq.deliver(&envelope(2))
        .await
        .expect("the producer is reused");

    let sent = sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 7);
    for (i, (topic, data, key, properties)) in sent.iter().take(5).enumerate() {
        assert_eq!(topic, TOPIC);
        assert_eq!(key.as_deref(), Some("PID/dev"));
        assert!(
            properties.contains(&("eddy-message-id".into(), format!("boot-{i}"))),
            "{properties:?}"
        );
        let record: Value = serde_json::from_slice(data).expect("CKafka-format JSON");
        assert_eq!(record["MsgType"], "Publish");
        assert_eq!(record["Topic"], "PID/dev/event");
        assert_eq!(record["ProductId"], "PID");
        assert_eq!(record["DeviceName"], "dev");
        assert_eq!(record["Seq"], i as u64);
        // 1_700_000_000 s is 2023-11-14 22:13:20 UTC: China Standard Time by default.
        assert_eq!(record["Time"], "2023-11-15 06:13:20");
        assert_eq!(record["PayloadLen"], format!(r#"{{"temp":{i}}}"#).len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsar_outside_the_grants_or_unreachable_never_counts_as_delivered() {
    let (url, sent) = stand_in().await;
    let host = PluginHost::new(HostSettings::default(), Connectors::new(None)).expect("host");

    // A topic the grants do not list: permanent (error action, dead letters).
    let sneaky = destination(
        &host,
        "sneaky",
        "persistent://public/default/other",
        grants(&url),
    )
    .await;
    match sneaky.deliver(&envelope(1)).await {
        Err(DeliveryError::Permanent(why)) => assert!(why.contains("may not send"), "{why}"),
        other => panic!("expected permission denied, got {other:?}"),
    }
    assert!(sent.lock().expect("lock").is_empty());

    // A misspelt setting is refused when the destination starts, not ignored.
    let plugin = host.load_builtin("pulsar").expect("built-in pulsar plugin");
    let typo = serde_json::json!({ "broker": "pulsar", "topic": TOPIC, "utc_offset_minutes": 0 });
    let refused = host
        .destination(plugin, "typo", "$rule/test", typo.to_string(), grants(&url))
        .await
        .map(drop)
        .expect_err("unknown configuration keys are refused");
    assert!(refused.to_string().contains("unknown field"), "{refused}");

    // Nothing listening: retried, never acknowledged.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("pulsar://{}", l.local_addr().expect("addr"))
    };
    let away = destination(&host, "away", TOPIC, grants(&closed)).await;
    match away.deliver(&envelope(1)).await {
        Err(DeliveryError::Retry(why)) => assert!(why.contains("pulsar"), "{why}"),
        other => panic!("expected a retry, got {other:?}"),
    }
}
