//! What the plugin-host benches share: a batch of N rule rows, each a 120-byte JSON report
//! (valid JSON) from one device, and the built-in `kafka` destination on a fresh topic of
//! the broker `scripts/start-kafka.sh` started.

use std::sync::Arc;
use std::time::Duration;

use eddy_core::destination::{Destination, Envelope, Row, RowMeta};
use eddy_plugin_host::{Connectors, Grants, HostSettings, PluginHost};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

#[allow(dead_code)] // not every bench uses every helper
pub fn envelope(rows: usize) -> Arc<Envelope> {
    Arc::new(Envelope {
        columns: vec!["temp".into(), "dev".into()],
        rows: (0..rows)
            .map(|i| Row {
                id: format!("0123456789abcdef-{i}"),
                payload: format!(
                    r#"{{"temp":{},"dev":"device-{:04}","humidity":50,"status":{{"switch":1}},"n":"{i:08}"}}"#,
                    20 + i % 10,
                    i % 1000
                )
                .into_bytes(),
                json: true,
                meta: RowMeta {
                    topic: "PRODUCT01/device-0001/event".into(),
                    product_id: "PRODUCT01".into(),
                    device_name: "device-0001".into(),
                    qos: 1,
                    seq: i as u64,
                    timestamp_ms: 1_700_000_000_000,
                },
            })
            .collect(),
    })
}

/// Creates `topic` (one partition) on `brokers` and starts the built-in `kafka` plugin
/// producing Tencent's CKafka records to it.
#[allow(dead_code)]
pub async fn kafka_destination(
    host: &Arc<PluginHost>,
    brokers: &str,
    topic: &str,
) -> Arc<dyn Destination> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let created = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create topic");
    for r in created {
        r.expect("topic created");
    }
    let plugin = host.load_builtin("kafka").expect("kafka plugin");
    let config = serde_json::json!({ "broker": "kafka", "topic": topic }).to_string();
    let grants = Grants {
        kafka_brokers: Some(brokers.to_owned()),
        kafka_topics: vec![topic.to_owned()],
        ..Grants::default()
    };
    host.destination(plugin, "bench-kafka", "$rule/bench", config, grants)
        .await
        .expect("destination")
}

/// What a bench against the broker needs: its address (`EDDY_TEST_KAFKA`, which
/// `scripts/start-kafka.sh` prints), a two-thread runtime and a plugin host. None, after
/// saying so, without the variable: the bench then measures nothing.
#[allow(dead_code)]
pub fn kafka_bench(name: &str) -> Option<(tokio::runtime::Runtime, String, Arc<PluginHost>)> {
    let Ok(brokers) = std::env::var("EDDY_TEST_KAFKA") else {
        eprintln!("{name} bench skipped: set EDDY_TEST_KAFKA (scripts/start-kafka.sh prints it)");
        return None;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let host = PluginHost::new(HostSettings::default(), Connectors::new(None)).expect("host");
    Some((runtime, brokers, host))
}
