//! The connectors plugins reach the outside through, each checked against the
//! destination's [`Grants`](crate::Grants) first.
//!
//! | interface | connector                                   | granted by                  |
//! |-----------|---------------------------------------------|-----------------------------|
//! | `mqtt`    | the hub's router ([`eddy_core::Publish`])   | topic filters               |
//! | `http`    | reqwest (one pooled client for the hub)     | `host` / `host:port` / `*`  |
//! | `kafka`   | rdkafka (librdkafka), `kafka.rs`            | broker list + topics        |
//! | `pulsar`  | pulsar-rs, `pulsar.rs`                      | service URL + topics        |
//! | `sql`     | sqlx (PostgreSQL, MySQL/MariaDB), `sql.rs`  | one database URL + tables   |
//!
//! Time spent waiting here does not count against the plugin's CPU deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_core::destination::Row;
use eddy_core::{Message, Publish, QoS, Topic};
use wasmtime::component::Resource;

use crate::Grants;
use crate::bindings::eddy::plugin::types::{self, ConnectorError};
use crate::bindings::eddy::plugin::{http, kafka, mqtt, pulsar, sql};
use crate::state::{BatchRep, HostState};

/// The hub-wide connector clients every destination shares.
#[derive(Debug, Clone)]
pub struct Connectors {
    /// The router, for `mqtt.publish` (none: every publish is refused as unavailable).
    pub publisher: Option<Arc<dyn Publish>>,
    pub http: reqwest::Client,
    /// `http.send` timeout when the plugin gives none.
    pub http_timeout: Duration,
    pub(crate) sql: Arc<crate::sql::Pools>,
    pub(crate) kafka: Arc<crate::kafka::Producers>,
    pub(crate) pulsar: Arc<crate::pulsar::Clients>,
}

impl Connectors {
    pub fn new(publisher: Option<Arc<dyn Publish>>) -> Self {
        Self {
            publisher,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap_or_default(),
            http_timeout: Duration::from_secs(10),
            sql: Arc::default(),
            kafka: Arc::default(),
            pulsar: Arc::default(),
        }
    }
}

/// Most bytes an `http.send` response body may have; longer bodies are cut.
const MAX_RESPONSE_BODY: usize = 1 << 20;

impl HostState {
    /// Runs a connector call, keeping its wall time out of the CPU deadline.
    async fn timed<T>(&mut self, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        self.host_time += started.elapsed();
        out
    }
}

impl HostState {
    /// `topic` parsed and checked against the grants.
    fn granted_topic(&self, topic: &str) -> Result<Topic, ConnectorError> {
        let parsed = Topic::parse(topic)
            .map_err(|e| ConnectorError::Invalid(format!("topic {topic:?}: {e}")))?;
        if !self.shared.grants.allows_topic(&parsed) {
            return Err(ConnectorError::PermissionDenied(format!(
                "destination {} may not publish to {topic:?}",
                self.shared.name
            )));
        }
        Ok(parsed)
    }

    /// A message this destination republishes.
    fn message(&self, topic: Topic, payload: Bytes, qos: QoS, now_ms: i64) -> Message {
        Message {
            topic,
            payload,
            qos,
            retain: false,
            publisher: self.shared.publisher_id.clone(),
            received_at_ms: now_ms,
            properties: None,
        }
    }

    /// Publishes `messages` through the router, all at once.
    async fn publish_all(&mut self, messages: Vec<Message>) -> Result<(), ConnectorError> {
        let Some(publisher) = self.shared.connectors.publisher.clone() else {
            return Err(ConnectorError::Unavailable(
                "this hub has no router attached".into(),
            ));
        };
        let results = self
            .timed(futures::future::join_all(
                messages.into_iter().map(|m| publisher.publish(m)),
            ))
            .await;
        match results.into_iter().find_map(Result::err) {
            Some(error) => Err(ConnectorError::Unavailable(error.to_string())),
            None => Ok(()),
        }
    }
}

fn qos(value: u8) -> Result<QoS, ConnectorError> {
    QoS::from_u8(value)
        .ok_or_else(|| ConnectorError::Invalid(format!("qos {value} is not 0, 1 or 2")))
}

impl mqtt::Host for HostState {
    async fn publish(
        &mut self,
        messages: Vec<mqtt::Message>,
    ) -> wasmtime::Result<Result<(), ConnectorError>> {
        let now_ms = eddy_core::time::unix_now_ms();
        let checked: Result<Vec<Message>, ConnectorError> = messages
            .into_iter()
            .map(|m| {
                let topic = self.granted_topic(&m.topic)?;
                Ok(self.message(topic, Bytes::from(m.payload), qos(m.qos)?, now_ms))
            })
            .collect();
        Ok(match checked {
            Ok(messages) => self.publish_all(messages).await,
            Err(refused) => Err(refused),
        })
    }

    async fn publish_rows(
        &mut self,
        batch: Resource<BatchRep>,
        topic: String,
        fixed_qos: Option<u8>,
        rows: Option<Vec<u32>>,
    ) -> wasmtime::Result<Result<(), ConnectorError>> {
        let envelope = self.envelope(&batch)?;
        let checked: Result<Vec<Message>, ConnectorError> = (|| {
            let topic = self.granted_topic(&topic)?;
            let fixed_qos = fixed_qos.map(qos).transpose()?;
            let now_ms = eddy_core::time::unix_now_ms();
            let message = |row: &Row| {
                let qos = match fixed_qos {
                    Some(qos) => qos,
                    // The hub stored it from a valid PUBLISH.
                    None => QoS::from_u8(row.meta.qos).unwrap_or(QoS::AtMostOnce),
                };
                self.message(
                    topic.clone(),
                    Bytes::copy_from_slice(&row.payload),
                    qos,
                    now_ms,
                )
            };
            match rows {
                None => Ok(envelope.rows.iter().map(message).collect()),
                Some(indexes) => indexes
                    .iter()
                    .map(|&i| {
                        envelope.rows.get(i as usize).map(message).ok_or_else(|| {
                            ConnectorError::Invalid(format!(
                                "row {i} is past the batch's {} rows",
                                envelope.rows.len()
                            ))
                        })
                    })
                    .collect::<Result<Vec<Message>, _>>(),
            }
        })();
        Ok(match checked {
            Ok(messages) => self.publish_all(messages).await,
            Err(refused) => Err(refused),
        })
    }
}

impl http::Host for HostState {
    async fn send(
        &mut self,
        request: http::Request,
    ) -> wasmtime::Result<Result<http::Response, ConnectorError>> {
        let url = match reqwest::Url::parse(&request.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            Ok(_) => {
                return Ok(Err(ConnectorError::Invalid(format!(
                    "{:?} is not an http(s) URL",
                    request.url
                ))));
            }
            Err(e) => {
                return Ok(Err(ConnectorError::Invalid(format!(
                    "{:?}: {e}",
                    request.url
                ))));
            }
        };
        if !self.shared.grants.allows_url(&url) {
            return Ok(Err(ConnectorError::PermissionDenied(format!(
                "destination {} may not call {}",
                self.shared.name,
                url.host_str().unwrap_or("")
            ))));
        }
        let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
            return Ok(Err(ConnectorError::Invalid(format!(
                "bad method {:?}",
                request.method
            ))));
        };
        let timeout = match request.timeout_ms {
            0 => self.shared.connectors.http_timeout,
            ms => Duration::from_millis(u64::from(ms)),
        };
        let mut builder = self
            .shared
            .connectors
            .http
            .request(method, url)
            .timeout(timeout)
            .body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let result = self
            .timed(async move {
                let response = builder.send().await?;
                let status = response.status().as_u16();
                let headers = response
                    .headers()
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect();
                let mut body = response.bytes().await?.to_vec();
                body.truncate(MAX_RESPONSE_BODY);
                Ok::<_, reqwest::Error>(http::Response {
                    status,
                    headers,
                    body,
                })
            })
            .await;
        Ok(result.map_err(|e| {
            if e.is_builder() {
                ConnectorError::Invalid(e.to_string())
            } else {
                ConnectorError::Unavailable(e.to_string())
            }
        }))
    }
}

/// A queue-like connector's grants (Kafka, Pulsar): the cluster and the topics it may
/// write. `named` is the connector's name and grant key, `verb` what refused calls say.
struct QueueGrant<'a> {
    named: (&'a str, &'a str),
    verb: &'a str,
    cluster: &'a Option<String>,
    topics: &'a [String],
}

impl<'a> QueueGrant<'a> {
    fn kafka(grants: &'a Grants) -> Self {
        Self {
            named: ("Kafka", "kafka-brokers"),
            verb: "produce to",
            cluster: &grants.kafka_brokers,
            topics: &grants.kafka_topics,
        }
    }

    /// The granted cluster, when it is granted and so is every topic of the call.
    fn check<'t>(
        &self,
        destination: &str,
        mut topics: impl Iterator<Item = &'t String>,
    ) -> Result<String, ConnectorError> {
        let (name, key) = self.named;
        let Some(cluster) = self.cluster.clone() else {
            return Err(ConnectorError::PermissionDenied(format!(
                "destination {destination} has no {name} grant ({key})"
            )));
        };
        match topics.find(|t| !self.topics.contains(t)) {
            Some(topic) => Err(ConnectorError::PermissionDenied(format!(
                "destination {destination} may not {} {name} topic {topic:?}",
                self.verb
            ))),
            None => Ok(cluster),
        }
    }
}

impl kafka::Host for HostState {
    async fn produce(
        &mut self,
        records: Vec<kafka::KafkaRecord>,
    ) -> wasmtime::Result<Result<(), ConnectorError>> {
        let shared = self.shared.clone();
        let grant = QueueGrant::kafka(&shared.grants);
        let brokers = match grant.check(&shared.name, records.iter().map(|r| &r.topic)) {
            Ok(brokers) => brokers,
            Err(refused) => return Ok(Err(refused)),
        };
        if records.is_empty() {
            return Ok(Ok(()));
        }
        let producers = shared.connectors.kafka.clone();
        Ok(self
            .timed(async move {
                let views = records.iter().map(|r| crate::kafka::RecordView {
                    topic: &r.topic,
                    key: r.key.as_deref(),
                    value: &r.value,
                    headers: r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_slice()))
                        .collect(),
                });
                crate::kafka::produce(&producers, &brokers, views).await
            })
            .await)
    }

    async fn produce_packed(
        &mut self,
        records: kafka::PackedRecords,
    ) -> wasmtime::Result<Result<(), ConnectorError>> {
        let shared = self.shared.clone();
        let grant = QueueGrant::kafka(&shared.grants);
        let brokers = match grant.check(&shared.name, std::iter::once(&records.topic)) {
            Ok(brokers) => brokers,
            Err(refused) => return Ok(Err(refused)),
        };
        if records.values.ends.is_empty() {
            return Ok(Ok(()));
        }
        let producers = shared.connectors.kafka.clone();
        Ok(self
            .timed(async move {
                let columns = unpack_records(&records)?;
                let (values, keys, header) = columns;
                let views = values
                    .iter()
                    .enumerate()
                    .map(|(i, value)| crate::kafka::RecordView {
                        topic: &records.topic,
                        key: keys.as_ref().map(|k| k[i]),
                        value,
                        headers: header
                            .as_ref()
                            .map(|(name, values)| (name.as_str(), values[i]))
                            .into_iter()
                            .collect(),
                    });
                crate::kafka::produce(&producers, &brokers, views).await
            })
            .await)
    }
}

/// The columns of packed Kafka records: values, keys, header (name, values), each checked
/// to have one item per value.
type RecordColumns<'a> = (
    Vec<&'a [u8]>,
    Option<Vec<&'a [u8]>>,
    Option<(&'a String, Vec<&'a [u8]>)>,
);

fn unpack_records(records: &kafka::PackedRecords) -> Result<RecordColumns<'_>, ConnectorError> {
    let values = column("values", &records.values, None)?;
    let count = Some(values.len());
    let keys = match &records.keys {
        Some(keys) => Some(column("keys", keys, count)?),
        None => None,
    };
    let header = match &records.header {
        Some(h) => Some((&h.name, column("header values", &h.values, count)?)),
        None => None,
    };
    Ok((values, keys, header))
}

/// The items of `packed`, which must number `count` when given.
fn column<'a>(
    name: &str,
    packed: &'a types::Packed,
    count: Option<usize>,
) -> Result<Vec<&'a [u8]>, ConnectorError> {
    let items = crate::state::unpack(packed)
        .map_err(|e| ConnectorError::Invalid(format!("{name}: {e}")))?;
    match count {
        Some(count) if count != items.len() => Err(ConnectorError::Invalid(format!(
            "{name} has {} items for {count} values",
            items.len()
        ))),
        _ => Ok(items),
    }
}

impl pulsar::Host for HostState {
    async fn send(
        &mut self,
        messages: Vec<pulsar::Message>,
    ) -> wasmtime::Result<Result<(), ConnectorError>> {
        let shared = self.shared.clone();
        let grant = QueueGrant {
            named: ("Pulsar", "pulsar-url"),
            verb: "send to",
            cluster: &shared.grants.pulsar_url,
            topics: &shared.grants.pulsar_topics,
        };
        let url = match grant.check(&shared.name, messages.iter().map(|m| &m.topic)) {
            Ok(url) => url,
            Err(refused) => return Ok(Err(refused)),
        };
        if messages.is_empty() {
            return Ok(Ok(()));
        }
        let clients = shared.connectors.pulsar.clone();
        Ok(self
            .timed(async move { crate::pulsar::send(&clients, &url, messages).await })
            .await)
    }
}

impl sql::Host for HostState {
    async fn execute(
        &mut self,
        statement: String,
        rows: Vec<Vec<sql::Value>>,
    ) -> wasmtime::Result<Result<u64, ConnectorError>> {
        let shared = self.shared.clone();
        if let Err(e) = crate::sql::check(&statement, &shared.grants, &shared.name) {
            return Ok(Err(e));
        }
        let url = shared.grants.sql_url.clone().unwrap_or_default();
        let pools = shared.connectors.sql.clone();
        Ok(self
            .timed(async move { crate::sql::execute(&pools, &url, &statement, &rows).await })
            .await)
    }
}
