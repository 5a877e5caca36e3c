//! `eddy rule …`: topic rules through the Cloud API (CreateTopicRule and friends, and
//! Eddy's TestTopicRule). The SQL is typed plain and base64-encoded here, as the API wants.

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::manage::client;
use super::output::{cell, fields, json as pretty, table};
use crate::cli::{RuleCommand, RuleContentArgs};
use crate::config::Config;

/// `TopicRulePayload` from the flags: `--action` objects joined into one array, or
/// `--actions` as given. Each must be JSON; the hub judges the rest (ActionNil, …).
fn payload(content: &RuleContentArgs) -> anyhow::Result<Value> {
    let actions = match &content.actions {
        Some(array) => {
            serde_json::from_str::<Value>(array).context("--actions is not valid JSON")?;
            array.clone()
        }
        None => {
            let items = content
                .action
                .iter()
                .map(|a| {
                    serde_json::from_str::<Value>(a)
                        .with_context(|| format!("--action {a:?} is not valid JSON"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if items.is_empty() {
                bail!(
                    "a rule needs at least one action: give --action JSON or --actions JSON-ARRAY"
                );
            }
            Value::Array(items).to_string()
        }
    };
    let mut payload = json!({
        "Sql": STANDARD.encode(&content.sql),
        "Actions": actions,
        "Description": content.description,
    });
    if let Some(errors) = &content.error_actions {
        serde_json::from_str::<Value>(errors).context("--error-actions is not valid JSON")?;
        payload["ErrorActions"] = Value::String(errors.clone());
    }
    Ok(payload)
}

fn state_label(disabled: Option<&Value>) -> &'static str {
    match disabled.and_then(Value::as_bool) {
        Some(true) => "disabled",
        Some(false) => "enabled",
        None => "?",
    }
}

/// DescribeTopicRule's `Rule`, with the SQL decoded for reading.
fn show(rule: &Value) -> String {
    let mut rule = rule.clone();
    if let Some(sql) = rule
        .get("Sql")
        .and_then(Value::as_str)
        .and_then(|s| STANDARD.decode(s).ok())
        .and_then(|b| String::from_utf8(b).ok())
    {
        rule["Sql"] = Value::String(sql);
    }
    rule["State"] = Value::String(state_label(rule.get("RuleDisabled")).to_owned());
    let mut text = fields(
        &rule,
        &[
            ("RuleName", "/RuleName"),
            ("State", "/State"),
            ("Sql", "/Sql"),
            ("TopicPattern", "/TopicPattern"),
            ("Actions", "/Actions"),
            ("ErrorActions", "/ErrorActions"),
            ("Description", "/Description"),
            ("CreatedAt", "/CreatedAt"),
            ("ModifiedAt", "/ModifiedAt"),
        ],
    );
    if let Some(stats) = rule.get("Stats") {
        text.push_str(&format!("\nstats:\n{}", pretty(stats)));
    }
    text
}

pub async fn run(config: &Config, command: RuleCommand) -> anyhow::Result<String> {
    match command {
        RuleCommand::Create { name, content, api } => {
            let mut body = payload(&content)?;
            body["RuleDisabled"] = Value::Bool(content.disabled);
            let params = json!({ "RuleName": name, "TopicRulePayload": body });
            let out = client(config, &api)?
                .call("CreateTopicRule", &params)
                .await?;
            Ok(if api.json {
                pretty(&out)
            } else {
                format!(
                    "created rule {name} ({})",
                    if content.disabled {
                        "disabled"
                    } else {
                        "enabled"
                    }
                )
            })
        }
        RuleCommand::Replace { name, content, api } => {
            let mut body = payload(&content)?;
            if content.disabled {
                body["RuleDisabled"] = Value::Bool(true);
            }
            let params = json!({ "RuleName": name, "TopicRulePayload": body });
            let out = client(config, &api)?
                .call("ReplaceTopicRule", &params)
                .await?;
            Ok(if api.json {
                pretty(&out)
            } else {
                format!("replaced rule {name}")
            })
        }
        RuleCommand::List { offset, limit, api } => {
            let out = client(config, &api)?
                .call(
                    "ListTopicRules",
                    &json!({ "Offset": offset, "Limit": limit }),
                )
                .await?;
            if api.json {
                return Ok(pretty(&out));
            }
            let rows = out["Rules"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    vec![
                        cell(r.get("RuleName")),
                        state_label(r.get("RuleDisabled")).to_owned(),
                        cell(r.get("TopicPattern")),
                        cell(r.get("Description")),
                        cell(r.get("CreatedAt")),
                    ]
                })
                .collect();
            Ok(format!(
                "{}\n{} rule(s) in all",
                table(
                    &["RuleName", "State", "Topic", "Description", "Created"],
                    rows
                ),
                cell(out.get("TotalCnt"))
            ))
        }
        RuleCommand::Show { name, api } => {
            let out = client(config, &api)?
                .call("DescribeTopicRule", &json!({ "RuleName": name }))
                .await?;
            Ok(if api.json {
                pretty(&out)
            } else {
                show(&out["Rule"])
            })
        }
        RuleCommand::Enable { name, api } => {
            simple(config, "EnableTopicRule", &name, "enabled", &api).await
        }
        RuleCommand::Disable { name, api } => {
            simple(config, "DisableTopicRule", &name, "disabled", &api).await
        }
        RuleCommand::Delete { name, api } => {
            simple(config, "DeleteTopicRule", &name, "deleted", &api).await
        }
        RuleCommand::Test {
            sql,
            topic,
            payload,
            client_id,
            client_ip,
            action,
            api,
        } => {
            let mut message = json!({ "Topic": topic, "Payload": payload });
            if let Some(id) = client_id {
                message["ClientId"] = Value::String(id);
            }
            if let Some(ip) = client_ip {
                message["ClientIp"] = Value::String(ip);
            }
            let mut params = json!({ "Sql": STANDARD.encode(&sql), "Messages": [message] });
            if !action.is_empty() {
                let actions = action
                    .iter()
                    .map(|a| {
                        serde_json::from_str::<Value>(a)
                            .with_context(|| format!("--action {a} is not valid JSON"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                params["Actions"] = Value::String(Value::Array(actions).to_string());
            }
            let mut out = client(config, &api)?.call("TestTopicRule", &params).await?;
            if !api.json
                && let Some(map) = out.as_object_mut()
            {
                map.remove("RequestId");
            }
            Ok(pretty(&out))
        }
    }
}

async fn simple(
    config: &Config,
    action: &str,
    name: &str,
    done: &str,
    api: &crate::cli::ApiArgs,
) -> anyhow::Result<String> {
    let out = client(config, api)?
        .call(action, &json!({ "RuleName": name }))
        .await?;
    Ok(if api.json {
        pretty(&out)
    } else {
        format!("{done} rule {name}")
    })
}
