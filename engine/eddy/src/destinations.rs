//! Rule actions on destination plugins: [`eddy_rules::DestinationFactory`] over
//! [`eddy_plugin_host::PluginHost`]. A Tencent-shaped action runs on its built-in plugin,
//! configured with the action's body, and is its own grant (the topic it republishes to,
//! the URL it forwards to).

use std::sync::Arc;

use eddy_core::destination::Destination;
use eddy_delivery::QueueId;
use eddy_plugin_host::{Grants, PluginHost};
use eddy_rules::{Action, DestinationFactory, DestinationFuture, RULE_PUBLISHER_PREFIX};

#[derive(Debug)]
pub struct PluginFactory(pub Arc<PluginHost>);

impl DestinationFactory for PluginFactory {
    fn start(&self, queue: &QueueId, rule: &str, action: &Action) -> DestinationFuture {
        let host = self.0.clone();
        let name = queue.to_string();
        let publisher = format!("{RULE_PUBLISHER_PREFIX}{rule}");
        let plugin = action.plugin();
        let config = action.config();
        let grants = match action {
            Action::Republish { topic, .. } => Grants::for_republish(topic.as_str()),
            Action::Forward { api, .. } => Grants::for_forward(api),
        };
        Box::pin(async move {
            let grants = grants?;
            let plugin = host.load_builtin(plugin).map_err(|e| e.to_string())?;
            let destination = host
                .destination(plugin, &name, &publisher, config, grants)
                .await
                .map_err(|e| e.to_string())?;
            Ok(destination as Arc<dyn Destination>)
        })
    }
}
