//! Eddy's configuration: the embedded `default.toml`, then the file given with
//! `--config`, then `EDDY_…` environment variables, each overriding the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use eddy_core::SecretString;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The fully commented default configuration, printed by `eddy config default`.
mod actions;
mod transport;
pub use actions::{DeliveryConfig, DestinationConfig, GrantsConfig, PluginsConfig};
pub use transport::{CoapConfig, MqttListeners};

pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Environment variables the CLI reads for itself (never reported as ignored).
pub const CLI_ENV_VARS: &[&str] = &[
    "EDDY_CONFIG",
    "EDDY_ENDPOINT",
    "EDDY_SECRET_ID",
    "EDDY_SECRET_KEY",
];

/// The top-level keys; an `EDDY_*` variable outside them is not configuration.
const TOP_LEVEL_KEYS: &[&str] = &[
    "data-dir",
    "destinations",
    "api",
    "store",
    "mqtt",
    "coap",
    "services",
    "device-logs",
    "rules",
    "delivery",
    "plugins",
    "log",
];

/// The whole configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Where Eddy keeps its state.
    pub data_dir: PathBuf,
    /// Named destinations for `{"plugin":{"name":…}}` rule actions.
    pub destinations: Vec<DestinationConfig>,
    /// The management API.
    pub api: ApiConfig,
    /// Where the registry is stored.
    pub store: StoreConfig,
    /// The MQTT listeners (used by the broker).
    pub mqtt: MqttConfig,
    /// The CoAP listeners (plain UDP and DTLS-PSK).
    pub coap: CoapConfig,
    /// The device services (shadow, RRPC, …).
    pub services: ServicesConfig,
    /// The device logs.
    #[serde(rename = "device-logs")]
    pub device_logs: DeviceLogsConfig,
    /// The rule engine's batching.
    pub rules: RulesConfig,
    /// Durable delivery of rule actions.
    pub delivery: DeliveryConfig,
    /// The Wasm destination plugins' sandbox.
    pub plugins: PluginsConfig,
    /// Logging.
    pub log: LogConfig,
    /// `EDDY_*` variables that name no top-level key and were left out (`serve` warns).
    #[serde(skip)]
    pub ignored_env: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApiConfig {
    /// Address of the Cloud API listener.
    pub listen: SocketAddr,
    /// Bootstrap admin SecretId; with `admin_secret_key`, or neither.
    pub admin_secret_id: Option<String>,
    /// Bootstrap admin SecretKey.
    pub admin_secret_key: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StoreConfig {
    /// A PostgreSQL URL; when absent the registry is SQLite under `data-dir`. Held as a
    /// secret because it may carry a password.
    pub postgres_url: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MqttConfig {
    /// Address of the plain-TCP MQTT listener.
    pub listen: SocketAddr,
    /// Longest a client may take from TCP accept to a complete CONNECT.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Largest PUBLISH payload a device may send, in bytes (Tencent: 16 KB).
    pub max_payload_bytes: u32,
    /// Largest keepalive a client may ask for (Tencent: 900 s); idle clients are cut after
    /// 1.5 × their keepalive.
    #[serde(with = "humantime_serde")]
    pub keepalive_max: Duration,
    /// Messages queued for one connection before publishers to it wait (back-pressure).
    pub outgoing_queue: usize,
    /// Longest topic a device may use, in bytes (Tencent: 255).
    pub device_max_topic_bytes: usize,
    /// Most `/` in a device's topic (Tencent: 6).
    pub device_max_topic_slashes: usize,
    /// Most subscriptions per device (Tencent: 100).
    pub device_max_subscriptions: usize,
    /// Messages per second a device may publish, and receive, each (Tencent: 20).
    pub device_rate: f64,
    /// Messages a device may send or receive at once before the rate applies.
    pub device_burst: u32,
    /// Shortest time between two CONNECTs of one device (Tencent: 5 s); "0s" turns it off.
    #[serde(with = "humantime_serde")]
    pub device_connect_interval: Duration,
    /// Failed authentications from one address within `auth-failure-window` after which
    /// the address is refused until the window ends; 0 turns the limit off.
    pub auth_failure_limit: u32,
    #[serde(with = "humantime_serde")]
    pub auth_failure_window: Duration,
    /// How long a persistent session outlives its last connection.
    #[serde(with = "humantime_serde")]
    pub session_expiry: Duration,
    /// Most QoS 1 messages queued per persistent session (Tencent: 150).
    pub offline_queue_max: usize,
    /// How long a queued message is kept (Tencent: 24 h).
    #[serde(with = "humantime_serde")]
    pub offline_message_ttl: Duration,
    /// The TLS listener (Tencent: 8883); empty turns it off.
    pub tls_listen: String,
    /// PEM files: the server's certificate chain and its private key. Unset: a
    /// development CA and server certificate generated under `data-dir/tls`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Accept TLS-PSK key devices on the TLS listeners.
    pub tls_psk: bool,
    /// MQTT over WebSocket listeners; empty turns one off.
    pub ws_listen: String,
    pub wss_listen: String,
    /// The WebSocket request path (Tencent: `/mqtt`).
    pub ws_path: String,
    /// Generic (non-Tencent) MQTT clients: open-broker mode.
    pub clients: ClientsConfig,
}

/// `[device-logs]`: what devices did, as hourly Parquet files queried with SQL.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeviceLogsConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    pub payloads: bool,
    #[serde(with = "humantime_serde")]
    pub flush_every: Duration,
    pub max_batch: usize,
    pub queue: usize,
}

impl DeviceLogsConfig {
    /// The logs' settings, or `None` when they are off.
    pub fn settings(&self, data_dir: &Path) -> Result<Option<eddy_logs::LogSettings>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        if self.max_batch == 0 || self.queue == 0 || self.flush_every.is_zero() {
            return Err(ConfigError(
                "device-logs.max-batch, queue and flush-every must be more than 0".into(),
            ));
        }
        Ok(Some(eddy_logs::LogSettings {
            dir: data_dir.join("logs"),
            retention: self.retention,
            payloads: self.payloads,
            flush_every: self.flush_every,
            max_batch: self.max_batch,
            queue: self.queue,
        }))
    }
}

/// `[services]`: the device services on Tencent's reserved topics.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServicesConfig {
    /// Workers answering device requests.
    pub workers: usize,
    /// Requests waiting per worker before publishers wait.
    pub queue: usize,
    /// How long PublishRRPCMessage waits for the device.
    #[serde(with = "humantime_serde")]
    pub rrpc_timeout: Duration,
    /// Most sub-devices one gateway has.
    pub max_sub_devices: i64,
    pub shadow: ShadowConfig,
    pub ota: OtaConfig,
}

/// `[services.ota]`: firmware storage and update tasks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OtaConfig {
    /// The API listener's base URL as devices reach it ("" = derived from api.listen).
    pub public_url: String,
    pub max_task_devices: usize,
    #[serde(with = "humantime_serde")]
    pub download_url_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub upload_url_ttl: Duration,
    pub max_firmware_bytes: u64,
}

/// `[services.shadow]`: limits of one shadow document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ShadowConfig {
    pub max_depth: usize,
    pub max_properties: usize,
    pub max_bytes: usize,
}

impl ServicesConfig {
    /// The services' settings; `data_dir` holds the firmware files, and `api` is the
    /// bound API address (the base of firmware URLs when `ota.public-url` is empty).
    pub fn settings(
        &self,
        data_dir: &std::path::Path,
        api: SocketAddr,
    ) -> Result<eddy_services::ServiceSettings, ConfigError> {
        if self.workers == 0 || self.queue == 0 {
            return Err(ConfigError(
                "services.workers and services.queue must be at least 1".into(),
            ));
        }
        if self.max_sub_devices < 1 {
            return Err(ConfigError(
                "services.max-sub-devices must be at least 1".into(),
            ));
        }
        if self.rrpc_timeout.is_zero() {
            return Err(ConfigError(
                "services.rrpc-timeout must be more than 0s".into(),
            ));
        }
        let shadow = &self.shadow;
        if shadow.max_depth == 0 || shadow.max_properties == 0 || shadow.max_bytes == 0 {
            return Err(ConfigError(
                "services.shadow.max-depth, max-properties and max-bytes must be at least 1".into(),
            ));
        }
        Ok(eddy_services::ServiceSettings {
            shadow: eddy_services::ShadowLimits {
                max_depth: shadow.max_depth,
                max_properties: shadow.max_properties,
                max_bytes: shadow.max_bytes,
            },
            rrpc_timeout: self.rrpc_timeout,
            workers: self.workers,
            queue: self.queue,
            ota: Some(self.ota.settings(data_dir, api)?),
            max_sub_devices: self.max_sub_devices,
        })
    }
}

impl OtaConfig {
    fn settings(
        &self,
        data_dir: &std::path::Path,
        api: SocketAddr,
    ) -> Result<eddy_services::ota::OtaSettings, ConfigError> {
        if self.max_task_devices == 0 || self.max_firmware_bytes == 0 {
            return Err(ConfigError(
                "services.ota.max-task-devices and max-firmware-bytes must be at least 1".into(),
            ));
        }
        let public_url = if self.public_url.is_empty() {
            // A wildcard listener has no address a device could use: say which one was
            // taken, and how to set the right one.
            let host = if api.ip().is_unspecified() {
                tracing::warn!(
                    "services.ota.public-url is not set: firmware URLs name 127.0.0.1; set it to the API address devices reach"
                );
                std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), api.port())
            } else {
                api
            };
            format!("http://{host}")
        } else if self.public_url.starts_with("http://") || self.public_url.starts_with("https://")
        {
            self.public_url.trim_end_matches('/').to_owned()
        } else {
            return Err(ConfigError(format!(
                "services.ota.public-url must start with http:// or https://, got {:?}",
                self.public_url
            )));
        };
        Ok(eddy_services::ota::OtaSettings {
            dir: data_dir.join("firmware"),
            public_url,
            max_task_devices: self.max_task_devices,
            download_ttl: self.download_url_ttl,
            upload_ttl: self.upload_url_ttl,
            max_firmware_bytes: self.max_firmware_bytes,
        })
    }
}

/// `[rules]`: how the rule engine batches accepted messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RulesConfig {
    /// A batch is evaluated once it holds this many messages…
    pub batch_rows: usize,
    /// …or once its first message has waited this long.
    #[serde(with = "humantime_serde")]
    pub batch_time: Duration,
    /// Messages waiting for the rule engine before publishers wait.
    pub queue: usize,
    /// Most topic rules the hub stores (Tencent: 1000 per account).
    pub max_rules: u64,
}

impl RulesConfig {
    pub fn engine_settings(&self) -> Result<eddy_rules::EngineSettings, ConfigError> {
        if self.batch_rows == 0 || self.queue == 0 {
            return Err(ConfigError(
                "rules.batch-rows and rules.queue must be at least 1".into(),
            ));
        }
        Ok(eddy_rules::EngineSettings {
            batch_rows: self.batch_rows,
            batch_time: self.batch_time,
            queue: self.queue,
        })
    }
}

/// `[mqtt.clients]`: who besides Tencent devices may connect, and to which topics.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClientsConfig {
    /// Whether generic MQTT clients may connect at all.
    pub enabled: bool,
    /// Whether a client without a username is admitted.
    pub anonymous: bool,
    /// Users who may connect with a password.
    pub users: Vec<ClientUserConfig>,
    /// Topic rules in order; the first that applies decides.
    pub acl: Vec<AclRuleConfig>,
    /// The decision when no rule applies.
    pub acl_no_match: PermissionConfig,
    /// Largest packet a generic client may send.
    pub max_packet_bytes: u32,
    /// Messages per second a client may publish, and receive, each; 0 is no limit.
    pub rate: f64,
    /// Messages at once before `rate` applies.
    pub burst: u32,
    /// Most subscriptions per client; 0 is no limit.
    pub max_subscriptions: usize,
    /// Shortest time between two CONNECTs with one ClientId; "0s" is no limit.
    #[serde(with = "humantime_serde")]
    pub connect_interval: Duration,
    /// Highest QoS granted to generic clients (0, 1 or 2).
    pub max_qos: u8,
}

/// One `[[mqtt.clients.users]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClientUserConfig {
    /// The MQTT username.
    pub username: String,
    /// An argon2 PHC string, as printed by `eddy passwd`.
    pub password_hash: String,
}

/// Not a secret, but attackable offline: kept out of `Debug` like the secrets.
impl std::fmt::Debug for ClientUserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientUserConfig")
            .field("username", &self.username)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// One `[[mqtt.clients.acl]]` rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AclRuleConfig {
    /// "allow" or "deny".
    pub permission: PermissionConfig,
    /// "publish", "subscribe" or "all".
    pub action: AclActionConfig,
    /// Only for this user, when set.
    pub username: Option<String>,
    /// Only for this client id, when set.
    pub client_id: Option<String>,
    /// Topic filters; `%c` is the client id, `%u` the username, `%%` a literal `%`.
    pub topics: Vec<String>,
}

/// What an ACL rule decides.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PermissionConfig {
    Allow,
    Deny,
}

/// Which operations an ACL rule is about.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AclActionConfig {
    Publish,
    Subscribe,
    All,
}

impl From<PermissionConfig> for eddy_broker::clients::Permission {
    fn from(value: PermissionConfig) -> Self {
        match value {
            PermissionConfig::Allow => Self::Allow,
            PermissionConfig::Deny => Self::Deny,
        }
    }
}

impl From<AclActionConfig> for eddy_broker::clients::AclAction {
    fn from(value: AclActionConfig) -> Self {
        match value {
            AclActionConfig::Publish => Self::Publish,
            AclActionConfig::Subscribe => Self::Subscribe,
            AclActionConfig::All => Self::All,
        }
    }
}

impl ClientsConfig {
    /// The broker's open-broker settings from this section (checked by
    /// [`eddy_broker::clients::ClientRules::new`], which `Config::load` already ran).
    pub fn clients_settings(&self) -> eddy_broker::clients::ClientsSettings {
        use eddy_broker::clients::{AclRule, ClientUser, ClientsSettings};
        ClientsSettings {
            enabled: self.enabled,
            anonymous: self.anonymous,
            users: self
                .users
                .iter()
                .map(|u| ClientUser {
                    username: u.username.clone(),
                    password_hash: u.password_hash.clone(),
                })
                .collect(),
            acl: self
                .acl
                .iter()
                .map(|r| AclRule {
                    permission: r.permission.into(),
                    action: r.action.into(),
                    username: r.username.clone(),
                    client_id: r.client_id.clone(),
                    topics: r.topics.clone(),
                })
                .collect(),
            acl_no_match: self.acl_no_match.into(),
        }
    }

    /// The validated rules, or an error naming the offending `mqtt.clients` entry.
    pub fn client_rules(&self) -> Result<eddy_broker::clients::ClientRules, ConfigError> {
        eddy_broker::clients::ClientRules::new(self.clients_settings())
            .map_err(|err| ConfigError(format!("  - mqtt.clients.{err}")))
    }
}

impl MqttConfig {
    /// The broker's settings from this section.
    pub fn broker_settings(&self) -> Result<eddy_broker::BrokerSettings, ConfigError> {
        let keepalive_max_secs = u16::try_from(self.keepalive_max.as_secs()).map_err(|_| {
            ConfigError("  - mqtt.keepalive-max must be at most 65535s (MQTT's limit)".into())
        })?;
        if self.offline_queue_max == 0 {
            return Err(ConfigError(
                "  - mqtt.offline-queue-max must be at least 1".into(),
            ));
        }
        if self.outgoing_queue == 0 {
            return Err(ConfigError(
                "  - mqtt.outgoing-queue must be at least 1".into(),
            ));
        }
        Ok(eddy_broker::BrokerSettings {
            max_payload_bytes: self.max_payload_bytes,
            connect_timeout: self.connect_timeout,
            keepalive_max_secs,
            outgoing_queue: self.outgoing_queue,
            device_max_topic_bytes: self.device_max_topic_bytes,
            device_max_topic_slashes: self.device_max_topic_slashes,
            device_max_subscriptions: self.device_max_subscriptions,
            device_rate_per_sec: self.device_rate,
            device_burst: self.device_burst,
            device_connect_interval: self.device_connect_interval,
            auth_failure_limit: self.auth_failure_limit,
            auth_failure_window: self.auth_failure_window,
            session_expiry: self.session_expiry,
            offline_queue_max: self.offline_queue_max,
            offline_message_ttl: self.offline_message_ttl,
            clients: eddy_broker::ClientLimits {
                max_packet_bytes: self.clients.max_packet_bytes,
                rate_per_sec: self.clients.rate,
                burst: self.clients.burst,
                max_subscriptions: self.clients.max_subscriptions,
                connect_interval: self.clients.connect_interval,
                max_qos: eddy_core::QoS::from_u8(self.clients.max_qos).ok_or_else(|| {
                    ConfigError(format!(
                        "  - mqtt.clients.max-qos must be 0, 1 or 2, got {}",
                        self.clients.max_qos
                    ))
                })?,
            },
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogConfig {
    /// A tracing filter (`info`, `eddy_api=debug,info`, …).
    pub level: String,
}

/// Why the configuration could not be loaded. The message names the key and its source.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{0}")]
pub struct ConfigError(String);

/// Maps `EDDY_API__ADMIN_SECRET_ID` to `api.admin-secret-id`.
fn env_key_to_path(key: &str) -> String {
    key.to_ascii_lowercase()
        .split("__")
        .map(|level| level.replace('_', "-"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether a dotted key path falls under one of the configuration's top-level keys.
fn is_config_path(path: &str) -> bool {
    let top = path.split('.').next().unwrap_or_default();
    TOP_LEVEL_KEYS.contains(&top)
}

impl Config {
    /// Loads defaults, then `file` (which must exist when given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Variables under a known top-level key are configuration, checked as strictly as
        // the file; others (the CLI's own, test harness settings, typos of a top-level
        // key) are left out and reported by `serve` as a warning.
        let env = Env::prefixed("EDDY_").filter_map(|key| {
            let path = env_key_to_path(key.as_str());
            is_config_path(&path).then(|| path.into())
        });
        figment = figment.merge(env);
        let mut config: Config = figment.extract().map_err(|err| {
            ConfigError(
                err.into_iter()
                    .map(|e| format!("  - {e}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        config.validate()?;
        config.mqtt.broker_settings()?;
        config.mqtt.clients.client_rules()?;
        config.ignored_env = std::env::vars_os()
            .filter_map(|(key, _)| key.into_string().ok())
            .filter(|key| {
                key.strip_prefix("EDDY_").is_some_and(|rest| {
                    !CLI_ENV_VARS.contains(&key.as_str()) && !is_config_path(&env_key_to_path(rest))
                })
            })
            .collect();
        config.ignored_env.sort();
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match (&self.api.admin_secret_id, &self.api.admin_secret_key) {
            (Some(id), Some(_)) if id.trim().is_empty() => Err(ConfigError(
                "  - api.admin-secret-id must not be empty".into(),
            )),
            (Some(_), None) | (None, Some(_)) => Err(ConfigError(
                "  - api.admin-secret-id and api.admin-secret-key must be set together".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The SQLite database of the registry.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("eddy.sqlite")
    }

    /// Where the generated admin key is written.
    pub fn admin_credentials_path(&self) -> PathBuf {
        self.data_dir.join("admin-credentials.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_map_to_kebab_paths() {
        assert_eq!(env_key_to_path("DATA_DIR"), "data-dir");
        assert_eq!(
            env_key_to_path("API__ADMIN_SECRET_ID"),
            "api.admin-secret-id"
        );
        assert_eq!(env_key_to_path("MQTT__LISTEN"), "mqtt.listen");
    }

    #[test]
    fn only_known_sections_are_configuration() {
        assert!(is_config_path("data-dir"));
        assert!(
            is_config_path("api.bogus"),
            "a typo inside a section is still checked"
        );
        assert!(!is_config_path("test-postgres-url"));
        assert!(!is_config_path("endpoint"));
    }

    #[test]
    fn embedded_defaults_load_and_hold_the_documented_values() {
        let config: Config = Figment::from(Toml::string(DEFAULT_TOML)).extract().unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./eddy-data"));
        assert_eq!(config.api.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.mqtt.listen.to_string(), "0.0.0.0:1883");
        let broker = config.mqtt.broker_settings().unwrap();
        let defaults = eddy_broker::BrokerSettings::default();
        assert_eq!(broker.max_payload_bytes, defaults.max_payload_bytes);
        assert_eq!(broker.connect_timeout, defaults.connect_timeout);
        assert_eq!(broker.keepalive_max_secs, defaults.keepalive_max_secs);
        assert_eq!(broker.outgoing_queue, defaults.outgoing_queue);
        assert_eq!(
            broker.device_max_topic_bytes,
            defaults.device_max_topic_bytes
        );
        assert_eq!(
            broker.device_max_topic_slashes,
            defaults.device_max_topic_slashes
        );
        assert_eq!(
            broker.device_max_subscriptions,
            defaults.device_max_subscriptions
        );
        assert!((broker.device_rate_per_sec - defaults.device_rate_per_sec).abs() < f64::EPSILON);
        assert_eq!(broker.device_burst, defaults.device_burst);
        assert_eq!(
            broker.device_connect_interval,
            defaults.device_connect_interval
        );
        assert!(config.api.admin_secret_id.is_none());
        assert!(config.store.postgres_url.is_none());
        assert_eq!(config.log.level, "info");
        let clients = config.mqtt.clients.clients_settings();
        assert!(!clients.enabled && !clients.anonymous);
        assert!(clients.users.is_empty() && clients.acl.is_empty());
        assert_eq!(clients.acl_no_match, eddy_broker::clients::Permission::Deny);
        assert!(config.mqtt.clients.client_rules().is_ok());
    }

    /// The commented examples in default.toml, uncommented, are a valid configuration.
    fn default_toml_examples() -> String {
        let section = DEFAULT_TOML
            .split("[mqtt.clients]")
            .nth(1)
            .and_then(|rest| rest.split("\n[log]").next())
            .unwrap();
        let mut out = String::new();
        for line in section.lines() {
            if let Some(example) = line.strip_prefix("#   ")
                && (example.starts_with('[') || example.contains(" = "))
            {
                out.push_str(example);
                out.push('\n');
            }
        }
        out
    }

    #[test]
    fn clients_section_maps_onto_the_broker_settings() {
        use eddy_broker::clients::{AclAction, Permission};
        let hash = eddy_broker::clients::hash_password(b"pw").unwrap();
        let examples = default_toml_examples().replace("$argon2id$v=19$m=19456,t=2,p=1$...", &hash);
        let config: Config = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string(&examples))
            .merge(Toml::string(
                "[mqtt.clients]\nenabled = true\nanonymous = true\nacl-no-match = \"allow\"",
            ))
            .extract()
            .unwrap();
        let settings = config.mqtt.clients.clients_settings();
        assert!(settings.enabled && settings.anonymous);
        assert_eq!(settings.acl_no_match, Permission::Allow);
        assert_eq!(settings.users.len(), 1);
        assert_eq!(settings.users[0].username, "dashboard");
        assert_eq!(settings.acl.len(), 3);
        assert_eq!(settings.acl[0].username.as_deref(), Some("dashboard"));
        assert_eq!(settings.acl[0].action, AclAction::Subscribe);
        assert_eq!(settings.acl[1].permission, Permission::Deny);
        assert_eq!(settings.acl[2].topics, ["clients/%c/#"]);
        assert!(config.mqtt.clients.client_rules().is_ok());
        assert!(
            !format!("{config:?}").contains(&hash),
            "the hash stays out of Debug"
        );
    }

    #[test]
    fn bad_clients_entries_are_named() {
        let config: Config = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string(
                "[[mqtt.clients.users]]\nusername = \"u\"\npassword-hash = \"plain\"",
            ))
            .extract()
            .unwrap();
        let err = config.mqtt.clients.client_rules().unwrap_err().to_string();
        assert!(err.contains("mqtt.clients.users[0] (\"u\")"), "{err}");
        let unknown: Result<Config, _> = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string(
                "[[mqtt.clients.acl]]\npermission = \"allow\"\naction = \"all\"\ntopic = [\"a\"]",
            ))
            .extract();
        assert!(unknown.is_err(), "topic (not topics) is refused");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let config: Config = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string(
                "[api]\nadmin-secret-id = \"AKIDx\"\nadmin-secret-key = \"topsecret-value\"",
            ))
            .extract()
            .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("topsecret-value"), "{printed}");
    }
}
