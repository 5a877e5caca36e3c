//! The rule engine as the API sees it: [`eddy_api::RuleEngineHook`] over
//! [`eddy_rules::RuleEngine`]. The API crate stays free of DataFusion; this binary is the
//! only place that knows both.

use std::sync::Arc;

use eddy_api::error::ApiError;
use eddy_api::{RuleEngineHook, SampleMessage};
use eddy_core::{QoS, Topic};
use eddy_rules::runtime::{DefinitionError, dry_run};
use eddy_rules::{RuleDefinition, RuleEngine};
use eddy_store::TopicRuleRecord;

#[derive(Debug)]
pub struct RulesHook {
    pub engine: Arc<RuleEngine>,
    /// The configured destinations `{"plugin":{"name":…}}` may name.
    pub destinations: Vec<String>,
    /// Where `{"forward":{"api":…}}` may post.
    pub forward_hosts: crate::destinations::ForwardHosts,
}

pub fn definition(record: TopicRuleRecord) -> RuleDefinition {
    RuleDefinition {
        name: record.name,
        sql: record.sql,
        actions: record.actions,
        error_actions: record.error_actions,
        enabled: !record.disabled,
    }
}

fn api_error(error: DefinitionError) -> ApiError {
    ApiError::new(error.tencent_code(), error.to_string())
}

impl RuleEngineHook for RulesHook {
    fn check(&self, sql: &str, actions: &str, error_actions: &str) -> Result<(), ApiError> {
        RuleEngine::check(&RuleDefinition {
            name: String::new(),
            sql: sql.to_owned(),
            actions: actions.to_owned(),
            error_actions: error_actions.to_owned(),
            enabled: true,
        })
        .map_err(api_error)?;
        for (field, text) in [("Actions", actions), ("ErrorActions", error_actions)] {
            for action in eddy_rules::runtime::parse_actions(text, true).unwrap_or_default() {
                if let eddy_rules::Action::Forward { api, .. } = &action {
                    self.forward_hosts.check(api).map_err(|why| {
                        ApiError::new("InvalidParameterValue", format!("{field}: {why}"))
                    })?;
                }
                let instances = action.instances();
                if !instances.is_empty() && !instances.iter().any(|n| self.destinations.contains(n))
                {
                    let name = instances.join("\" or \"");
                    return Err(ApiError::new(
                        "InvalidParameterValue",
                        format!(
                            "{field}: no destination named \"{name}\" is configured (configured: {})",
                            if self.destinations.is_empty() {
                                "none".to_owned()
                            } else {
                                self.destinations.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn reload(&self, rules: Vec<TopicRuleRecord>) {
        let definitions: Vec<_> = rules.into_iter().map(definition).collect();
        // Failures are logged by the engine; a stored rule was checked when written.
        self.engine.load(&definitions);
    }

    fn stats(&self, rule_name: &str) -> Option<serde_json::Value> {
        self.engine
            .counts(rule_name)
            .and_then(|c| serde_json::to_value(c).ok())
    }

    fn test(
        &self,
        sql: &str,
        actions: &str,
        messages: &[SampleMessage],
    ) -> Result<serde_json::Value, ApiError> {
        let samples =
            messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let bad = |what: String| {
                        ApiError::new("InvalidParameterValue", format!("Messages.{i}.{what}"))
                    };
                    Ok(eddy_rules::runtime::SampleMessage {
                        topic: Topic::parse(&m.topic)
                            .map_err(|e| bad(format!("Topic {:?}: {e}", m.topic)))?,
                        payload: m.payload.clone(),
                        client_id: m.client_id.clone(),
                        client_ip: match &m.client_ip {
                            None => None,
                            Some(ip) => Some(ip.parse().map_err(|_| {
                                bad(format!("ClientIp {ip:?} is not an IP address"))
                            })?),
                        },
                        qos: QoS::from_u8(m.qos)
                            .ok_or_else(|| bad(format!("Qos {} is not 0, 1 or 2", m.qos)))?,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
        let run = dry_run(sql, actions, &samples).map_err(api_error)?;
        serde_json::to_value(run).map_err(|e| ApiError::new("InternalError", e.to_string()))
    }
}
