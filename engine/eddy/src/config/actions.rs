//! The configuration of rule actions: `[delivery]` (their durable queues), `[plugins]`
//! (the sandbox every destination plugin runs in) and `[[destinations]]` (named plugins
//! with their configuration and grants).

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[delivery]`: the durable queue of every rule action (DESIGN.md decision 4).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeliveryConfig {
    /// First pause after a failed delivery; doubles (with jitter) up to `retry-max`.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How long a failing batch keeps being retried before the error action and the
    /// dead-letter queue take it.
    #[serde(with = "humantime_serde")]
    pub retry_for: Duration,
    /// Most rows one destination call gets.
    pub max_batch_rows: usize,
    /// Bytes one action's queue may hold on disk.
    pub queue_max_bytes: u64,
    /// What a full queue does: "block" (the rule engine, then publishers, wait) or
    /// "drop-oldest" (counted in eddy_delivery_dropped_rows_total).
    pub full_policy: String,
}

impl DeliveryConfig {
    pub fn settings(&self) -> Result<eddy_delivery::DeliverySettings, ConfigError> {
        let full_policy = match self.full_policy.as_str() {
            "block" => eddy_delivery::FullPolicy::Block,
            "drop-oldest" => eddy_delivery::FullPolicy::DropOldest,
            other => {
                return Err(ConfigError(format!(
                    "delivery.full-policy is \"block\" or \"drop-oldest\", not {other:?}"
                )));
            }
        };
        if self.max_batch_rows == 0 || self.queue_max_bytes == 0 || self.retry_initial.is_zero() {
            return Err(ConfigError(
                "delivery.max-batch-rows, queue-max-bytes and retry-initial must be above 0".into(),
            ));
        }
        Ok(eddy_delivery::DeliverySettings {
            retry_initial: self.retry_initial,
            retry_max: self.retry_max.max(self.retry_initial),
            retry_for: self.retry_for,
            max_batch_rows: self.max_batch_rows,
            queue_max_bytes: self.queue_max_bytes,
            full_policy,
        })
    }
}

/// One `[[destinations]]` entry: a plugin, its configuration and its grants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DestinationConfig {
    pub name: String,
    /// A component file, or `builtin:<name>`.
    pub plugin: String,
    /// Handed to the plugin's `configure` as JSON text.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    #[serde(default)]
    pub grants: GrantsConfig,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// What one destination's connectors may reach.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GrantsConfig {
    #[serde(default)]
    pub mqtt_topics: Vec<String>,
    #[serde(default)]
    pub http_hosts: Vec<String>,
    /// The Kafka cluster `kafka` may produce to: its bootstrap brokers, `host:port,…`.
    #[serde(default)]
    pub kafka_brokers: Option<String>,
    #[serde(default)]
    pub kafka_topics: Vec<String>,
    /// The Pulsar cluster `pulsar` may send to: its service URL, `pulsar://host:6650`.
    #[serde(default)]
    pub pulsar_url: Option<String>,
    #[serde(default)]
    pub pulsar_topics: Vec<String>,
    /// The database `sql` may write: `postgres://…` or `mysql://…`.
    #[serde(default)]
    pub sql_url: Option<String>,
    #[serde(default)]
    pub sql_tables: Vec<String>,
}

impl DestinationConfig {
    pub fn grants(&self) -> Result<eddy_plugin_host::Grants, ConfigError> {
        let g = &self.grants;
        let mqtt_topics = g
            .mqtt_topics
            .iter()
            .map(|f| {
                eddy_core::TopicFilter::parse(f).map_err(|e| {
                    ConfigError(format!(
                        "destinations {:?}: grants.mqtt-topics {f:?}: {e}",
                        self.name
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(eddy_plugin_host::Grants {
            mqtt_topics,
            http_hosts: g.http_hosts.clone(),
            kafka_brokers: g.kafka_brokers.clone(),
            kafka_topics: g.kafka_topics.clone(),
            pulsar_url: g.pulsar_url.clone(),
            pulsar_topics: g.pulsar_topics.clone(),
            sql_url: g.sql_url.clone(),
            sql_tables: g.sql_tables.clone(),
        })
    }
}

/// `[plugins]`: the limits every destination plugin instance runs under.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginsConfig {
    /// Linear memory one instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Time one call may run inside the plugin (time waiting in connectors not counted).
    #[serde(with = "humantime_serde")]
    pub cpu_time: Duration,
    /// Plugin instances that may exist at once.
    pub max_instances: u32,
    /// Hosts (`host`, `host:port`, or `*` for any) a rule's Tencent `forward` action may
    /// post to; the action's URL is its own grant only within these.
    pub forward_hosts: Vec<String>,
}

impl PluginsConfig {
    pub fn settings(&self) -> Result<eddy_plugin_host::HostSettings, ConfigError> {
        if self.memory_bytes < (1 << 20) || self.max_instances == 0 || self.cpu_time.is_zero() {
            return Err(ConfigError(
                "plugins.memory-bytes must be at least 1 MiB, max-instances and cpu-time above 0"
                    .into(),
            ));
        }
        Ok(eddy_plugin_host::HostSettings {
            memory_bytes: self.memory_bytes,
            cpu_time: self.cpu_time,
            max_instances: self.max_instances,
            ..eddy_plugin_host::HostSettings::default()
        })
    }
}
