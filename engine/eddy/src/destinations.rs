//! Rule actions on destination plugins: [`eddy_rules::DestinationFactory`] over
//! [`eddy_plugin_host::PluginHost`].
//!
//! - A Tencent-shaped action runs on its built-in plugin, configured with the action's
//!   body, and is its own grant (the topic it republishes to, the URL it forwards to).
//! - `{"plugin":{"name":…}}` runs the `[[destinations]]` entry of that name: its plugin
//!   (a `.wasm` file or `builtin:…`), its configuration, its grants.
//! - `{"mysql":{"instanceid":…,…}}` / `{"postgres":…}` run the built-in SQL plugin with
//!   the action's body, under the grants (database URL, tables) of the `[[destinations]]`
//!   entry `instanceid` names.
//! - `{"ckafka":{"instance":{"id":…,"name":…},"topic":{"name":…}}}` (and `tdmq` /
//!   `pulsar` in the same shape) run the built-in `kafka` / `pulsar` plugin under the
//!   grants (broker list) of the `[[destinations]]` entry `instance.id` or `instance.name`
//!   names, plus the action's own topic.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use eddy_core::destination::Destination;
use eddy_delivery::QueueId;
use eddy_plugin_host::{Grants, Plugin, PluginHost};
use eddy_rules::{Action, DestinationFactory, DestinationFuture, RULE_PUBLISHER_PREFIX};

use crate::config::DestinationConfig;

/// One configured destination, its plugin compiled at start.
#[derive(Debug)]
struct Configured {
    plugin: Arc<Plugin>,
    config: String,
    grants: Grants,
}

#[derive(Debug)]
pub struct PluginFactory {
    host: Arc<PluginHost>,
    configured: HashMap<String, Configured>,
    /// `plugins.forward-hosts`: where a forward action may post.
    forward_hosts: ForwardHosts,
}

/// `plugins.forward-hosts`: the hosts a rule's `forward` action may post to.
#[derive(Debug, Clone)]
pub struct ForwardHosts(Grants);

impl ForwardHosts {
    pub fn new(hosts: &[String]) -> Self {
        Self(Grants {
            http_hosts: hosts.to_vec(),
            ..Grants::default()
        })
    }

    /// Whether a forward action may post to `api`; the refusal says why.
    pub fn check(&self, api: &str) -> Result<(), String> {
        let url = reqwest::Url::parse(api).map_err(|e| format!("forward api {api:?}: {e}"))?;
        if self.0.allows_url(&url) {
            Ok(())
        } else {
            Err(format!(
                "forward api {api:?}: host {} is not in plugins.forward-hosts ({})",
                url.host_str().unwrap_or(""),
                self.0.http_hosts.join(", ")
            ))
        }
    }
}

impl PluginFactory {
    /// Compiles every configured destination's plugin now, so a bad file or grant stops
    /// `eddy serve` with its name instead of failing later in the background.
    pub fn new(
        host: Arc<PluginHost>,
        destinations: &[DestinationConfig],
        forward_hosts: ForwardHosts,
    ) -> anyhow::Result<Self> {
        let mut configured = HashMap::new();
        for d in destinations {
            let plugin = match d.plugin.strip_prefix("builtin:") {
                Some(name) => host.load_builtin(name)?,
                None => {
                    let bytes = std::fs::read(&d.plugin).with_context(|| {
                        format!("destination {:?}: reading plugin {}", d.name, d.plugin)
                    })?;
                    host.load(&d.plugin, &bytes)?
                }
            };
            // A built-in plugin that serves two kinds takes its kind from its name
            // (`builtin:kafka` → "broker": "kafka"), unless the config says otherwise.
            let mut config = d.config.clone();
            let kind = match d.plugin.as_str() {
                "builtin:kafka" | "builtin:pulsar" => Some("broker"),
                "builtin:postgres" | "builtin:mysql" => Some("dialect"),
                _ => None,
            };
            if let (Some(key), Some(map)) = (kind, config.as_object_mut()) {
                let name = d.plugin.trim_start_matches("builtin:");
                map.entry(key).or_insert_with(|| name.into());
            }
            let entry = Configured {
                plugin,
                config: config.to_string(),
                grants: d.grants()?,
            };
            if configured.insert(d.name.clone(), entry).is_some() {
                anyhow::bail!("destinations: the name {:?} is used twice", d.name);
            }
        }
        Ok(Self {
            host,
            configured,
            forward_hosts,
        })
    }

    /// The configured destinations' names (what `{"plugin":{"name":…}}` may use).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.configured.keys().cloned().collect();
        names.sort();
        names
    }
}

impl DestinationFactory for PluginFactory {
    fn start(&self, queue: &QueueId, rule: &str, action: &Action) -> DestinationFuture {
        let host = self.host.clone();
        let name = queue.to_string();
        let publisher = format!("{RULE_PUBLISHER_PREFIX}{rule}");
        let setup: Result<(Arc<Plugin>, String, Grants), String> = match action {
            Action::Plugin { name } => match self.configured.get(name) {
                Some(c) => Ok((c.plugin.clone(), c.config.clone(), c.grants.clone())),
                None => Err(format!("no destination named {name:?} is configured")),
            },
            // The action's body configures the built-in plugin (SQL, Kafka, Pulsar); the
            // configured destination it names holds what it may reach (database and
            // tables, brokers), and the action's own topic is granted too.
            Action::Sql { .. } | Action::Queue { .. } => {
                let instances = action.instances();
                match instances.iter().find_map(|n| self.configured.get(n)) {
                    Some(c) => {
                        let mut grants = c.grants.clone();
                        if let Action::Queue { broker, topic, .. } = action {
                            match *broker {
                                "kafka" => grants.kafka_topics.push(topic.clone()),
                                _ => grants.pulsar_topics.push(topic.clone()),
                            }
                        }
                        action
                            .plugin()
                            .ok_or_else(|| "no built-in plugin for this action".to_owned())
                            .and_then(|p| host.load_builtin(p).map_err(|e| e.to_string()))
                            .map(|plugin| (plugin, action.config(), grants))
                    }
                    None => Err(format!(
                        "no destination named \"{}\" is configured",
                        instances.join("\" or \"")
                    )),
                }
            }
            builtin => {
                let grants = match builtin {
                    Action::Forward { api, .. } => self
                        .forward_hosts
                        .check(api)
                        .and_then(|()| Grants::for_forward(api)),
                    other => Grants::for_republish(other.target()),
                };
                builtin
                    .plugin()
                    .ok_or_else(|| "no built-in plugin for this action".to_owned())
                    .and_then(|p| host.load_builtin(p).map_err(|e| e.to_string()))
                    .and_then(|plugin| Ok((plugin, builtin.config(), grants?)))
            }
        };
        Box::pin(async move {
            let (plugin, config, grants) = setup?;
            let destination = host
                .destination(plugin, &name, &publisher, config, grants)
                .await
                .map_err(|e| e.to_string())?;
            Ok(destination as Arc<dyn Destination>)
        })
    }
}
