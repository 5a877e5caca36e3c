//! Evaluating a rule against sample messages without side effects (`eddy rule test`, the
//! API's `TestTopicRule`): the output rows and what each action would receive.

use std::net::IpAddr;

use base64::Engine as _;
use bytes::Bytes;
use eddy_core::{Message, QoS, Topic};
use serde::Serialize;
use serde_json::{Map, Value};

use super::actions::{Action, parse_actions, row_payloads};
use super::set::DefinitionError;
use crate::{CompiledRule, MessageBatchBuilder, RuleStats, rows_as_json};

/// One sample message.
#[derive(Debug, Clone)]
pub struct SampleMessage {
    pub topic: Topic,
    pub payload: Bytes,
    /// The publishing ClientId (`${ProductId}${DeviceName}` for a device).
    pub client_id: String,
    pub client_ip: Option<IpAddr>,
    pub qos: QoS,
}

/// What a dry run found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DryRun {
    /// For each sample, whether its topic matches the rule's FROM filter.
    pub matched: Vec<bool>,
    /// The output rows (samples that matched FROM and passed WHERE), as JSON objects.
    pub rows: Vec<Map<String, Value>>,
    /// What each action would receive.
    pub actions: Vec<ActionPreview>,
    /// Missing fields, type mismatches and non-JSON payloads met while decoding.
    pub not_json: u64,
    pub missing_fields: u64,
    pub type_mismatches: u64,
}

/// One action's input in a dry run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActionPreview {
    /// The action type (`republish`).
    pub r#type: String,
    /// Where it would send (the republish topic, maybe with `${field}` variables).
    pub target: String,
    /// For each payload, the topic it would be published on, or why it could not be.
    pub topics: Vec<String>,
    /// The message payloads it would send: UTF-8 text as is, anything else as
    /// `base64:<…>`.
    pub payloads: Vec<String>,
}

/// Compiles `sql` and `actions` (which may be empty: rows only) and evaluates them on
/// `samples`. Nothing is published and nothing is counted anywhere.
pub fn dry_run(
    sql: &str,
    actions: &str,
    samples: &[SampleMessage],
) -> Result<DryRun, DefinitionError> {
    let rule = CompiledRule::from_sql(sql)?;
    let actions = parse_actions(actions, true).map_err(DefinitionError::Actions)?;
    let filter = rule.topic_filter();
    let matched: Vec<bool> = samples.iter().map(|s| filter.matches(&s.topic)).collect();
    let now_ms = eddy_core::time::unix_now_ms();
    let mut builder = MessageBatchBuilder::with_capacity(samples.len());
    for (seq, sample) in samples.iter().enumerate().filter(|(i, _)| matched[*i]) {
        let message = Message {
            topic: sample.topic.clone(),
            payload: sample.payload.clone(),
            qos: sample.qos,
            retain: false,
            publisher: sample.client_id.clone(),
            received_at_ms: now_ms,
            properties: None,
        };
        builder.append(&message, sample.client_ip, seq as u64);
    }
    let output = rule.run(&builder.finish())?;
    let rows = rows_as_json(&output);
    let RuleStats {
        not_json,
        missing_fields,
        type_mismatches,
        ..
    } = rule.stats();
    let payloads: Vec<String> = row_payloads(&output)
        .0
        .iter()
        .map(|p| match std::str::from_utf8(p) {
            Ok(text) => text.to_owned(),
            Err(_) => format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(p)
            ),
        })
        .collect();
    Ok(DryRun {
        matched,
        actions: actions
            .iter()
            .map(|a| match a {
                Action::Republish { topic, .. } => ActionPreview {
                    r#type: "republish".into(),
                    target: topic.as_str().to_owned(),
                    topics: rows
                        .iter()
                        .map(|row| match topic.render(Some(row)) {
                            Ok(t) => t.as_str().to_owned(),
                            Err(e) => format!("error: {e}"),
                        })
                        .collect(),
                    payloads: payloads.clone(),
                },
                Action::Forward { api, .. } => ActionPreview {
                    r#type: "forward".into(),
                    target: api.clone(),
                    topics: Vec::new(),
                    payloads: payloads.clone(),
                },
                Action::Plugin { name } => ActionPreview {
                    r#type: "plugin".into(),
                    target: name.clone(),
                    topics: Vec::new(),
                    payloads: payloads.clone(),
                },
                Action::Sql {
                    dialect, instance, ..
                } => ActionPreview {
                    r#type: (*dialect).into(),
                    target: instance.clone(),
                    topics: Vec::new(),
                    payloads: payloads.clone(),
                },
                Action::Queue { broker, topic, .. } => ActionPreview {
                    r#type: (*broker).into(),
                    target: topic.clone(),
                    topics: Vec::new(),
                    payloads: payloads.clone(),
                },
            })
            .collect(),
        rows,
        not_json,
        missing_fields,
        type_mismatches,
    })
}
