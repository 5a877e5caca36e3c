//! Topic rules: CreateTopicRule, ReplaceTopicRule, EnableTopicRule, DisableTopicRule,
//! DeleteTopicRule and ListTopicRules as in iotcloud 2021-04-08; DescribeTopicRule (which
//! only Tencent's iotexplorer has) and Eddy's dry run, TestTopicRule.
//!
//! Shapes follow Tencent's SDK models: `TopicRulePayload{Sql (base64), Actions (a JSON
//! text), Description, RuleDisabled}` in, `TopicRuleInfo{RuleName, Description,
//! CreatedAt, RuleDisabled, TopicPattern}` out of ListTopicRules (`PageNum` from 1,
//! `PageSize`; Eddy also takes `Offset`/`Limit`), and iotexplorer's `TopicRule{RuleName,
//! Sql, Description, Actions, RuleDisabled}` out of DescribeTopicRule. Eddy adds
//! `TopicRulePayload.ErrorActions` (the actions run when an action fails), and the engine's
//! per-rule counters as `Stats`: always in DescribeTopicRule, in ListTopicRules only when
//! asked with `WithStats`, since Tencent's SDKs warn about response fields they do not
//! know.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eddy_registry::rules::{decode_sql, topic_pattern};
use eddy_registry::{RuleName, TopicRuleContent};
use eddy_store::{Page, TopicRuleRecord};
use serde_json::{Map, Value, json};

use super::{object, page};
use crate::ApiState;
use crate::error::ApiError;
use crate::params::Params;
use crate::rules::SampleMessage;

/// Most messages one TestTopicRule call may carry.
pub(crate) const MAX_TEST_MESSAGES: usize = 100;
/// Largest `PageSize` of ListTopicRules.
const MAX_PAGE_SIZE: i64 = 500;
/// `PageSize` when absent.
const DEFAULT_PAGE_SIZE: i64 = 10;

/// Reads and checks `TopicRulePayload`; the engine (when wired) checks it too.
fn payload(state: &ApiState, p: &Params) -> Result<(TopicRuleContent, Option<bool>), ApiError> {
    let payload = p
        .opt_object("TopicRulePayload")?
        .ok_or_else(|| ApiError::missing("TopicRulePayload"))?;
    let sql = payload.str("Sql")?;
    let actions = payload.opt_str("Actions")?;
    let error_actions = payload.opt_str("ErrorActions")?;
    let description = payload.opt_str("Description")?.unwrap_or_default();
    let disabled = payload.opt_bool("RuleDisabled")?;
    payload.finish()?;
    let content = TopicRuleContent::parse(
        &sql,
        actions.as_deref(),
        error_actions.as_deref(),
        description,
    )?;
    if let Some(engine) = &state.rules {
        engine.check(&content.sql, &content.actions, &content.error_actions)?;
    }
    Ok((content, disabled))
}

/// After a successful write: the engine gets the complete list. A failure to read it is
/// the hub's, logged; the write itself is durable and stays acknowledged.
async fn reload(state: &ApiState) {
    if let Err(err) = state.reload_rules().await {
        tracing::error!(error = %err, "topic rules stored but not reloaded into the rule engine");
    }
}

pub(super) async fn create(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let name = RuleName::parse(&p.str("RuleName")?)?;
    let (content, disabled) = payload(state, p)?;
    p.finish()?;
    state
        .registry
        .create_topic_rule(&name, content, disabled.unwrap_or(false))
        .await?;
    reload(state).await;
    Ok(Map::new())
}

pub(super) async fn replace(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let name = p.str("RuleName")?;
    let (content, disabled) = payload(state, p)?;
    p.finish()?;
    state
        .registry
        .replace_topic_rule(&name, content, disabled)
        .await?;
    reload(state).await;
    Ok(Map::new())
}

pub(super) async fn set_enabled(
    state: &ApiState,
    p: &Params,
    enabled: bool,
) -> Result<Map<String, Value>, ApiError> {
    let name = p.str("RuleName")?;
    p.finish()?;
    state
        .registry
        .set_topic_rule_enabled(&name, enabled)
        .await?;
    reload(state).await;
    Ok(Map::new())
}

pub(super) async fn delete(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let name = p.str("RuleName")?;
    p.finish()?;
    state.registry.delete_topic_rule(&name).await?;
    reload(state).await;
    Ok(Map::new())
}

fn stats(state: &ApiState, name: &str) -> Option<Value> {
    state.rules.as_ref().and_then(|engine| engine.stats(name))
}

pub(super) async fn describe(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let name = p.str("RuleName")?;
    p.finish()?;
    let r = state.registry.topic_rule(&name).await?;
    let mut rule = object(json!({
        "RuleName": r.name,
        "Sql": STANDARD.encode(&r.sql),
        "Description": r.description,
        "Actions": r.actions,
        "ErrorActions": r.error_actions,
        "RuleDisabled": r.disabled,
        "CreatedAt": r.created_at,
        "ModifiedAt": r.modified_at,
        "TopicPattern": topic_pattern(&r.sql),
    }));
    if let Some(stats) = stats(state, &r.name) {
        rule.insert("Stats".into(), stats);
    }
    Ok(object(json!({ "Rule": rule })))
}

/// Tencent's `PageNum` (from 1) and `PageSize`, or Eddy's `Offset`/`Limit`.
fn rules_page(p: &Params) -> Result<Page, ApiError> {
    let page_num = p.opt_i64("PageNum")?;
    let page_size = p.opt_i64("PageSize")?;
    if page_num.is_none() && page_size.is_none() {
        return page(p);
    }
    if p.opt_i64("Offset")?.is_some() || p.opt_i64("Limit")?.is_some() {
        return Err(ApiError::invalid(
            "PageNum",
            "give PageNum/PageSize or Offset/Limit, not both",
        ));
    }
    let num = page_num.unwrap_or(1);
    let size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if num < 1 {
        return Err(ApiError::invalid(
            "PageNum",
            format!("must be 1 or more, got {num}"),
        ));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Err(ApiError::invalid(
            "PageSize",
            format!("must be between 1 and {MAX_PAGE_SIZE}, got {size}"),
        ));
    }
    Ok(Page {
        offset: (num - 1).unsigned_abs().saturating_mul(size.unsigned_abs()),
        limit: size.unsigned_abs(),
    })
}

fn info(state: &ApiState, r: &TopicRuleRecord, with_stats: bool) -> Value {
    let mut info = object(json!({
        "RuleName": r.name,
        "Description": r.description,
        "CreatedAt": r.created_at,
        "RuleDisabled": r.disabled,
        "TopicPattern": topic_pattern(&r.sql),
    }));
    if with_stats && let Some(stats) = stats(state, &r.name) {
        info.insert("Stats".into(), stats);
    }
    Value::Object(info)
}

pub(super) async fn list(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let page = rules_page(p)?;
    let with_stats = p.opt_bool("WithStats")?.unwrap_or(false);
    p.finish()?;
    let rules = state.registry.list_topic_rules(page).await?;
    Ok(object(json!({
        "TotalCnt": rules.total,
        "Rules": rules.items.iter().map(|r| info(state, r, with_stats)).collect::<Vec<_>>(),
    })))
}

fn sample(m: &Params) -> Result<SampleMessage, ApiError> {
    let topic = m.str("Topic")?;
    let payload = m.str("Payload")?;
    let payload = match m.opt_str("PayloadEncoding")?.as_deref() {
        None | Some("") => payload.into_bytes(),
        Some("base64") => STANDARD
            .decode(payload.trim())
            .map_err(|e| ApiError::invalid(&field(m, "Payload"), format!("is not base64: {e}")))?,
        Some(other) => {
            return Err(ApiError::invalid(
                &field(m, "PayloadEncoding"),
                format!("must be \"base64\" or empty, got {other:?}"),
            ));
        }
    };
    let client_id = match (
        m.opt_str("ClientId")?,
        m.opt_str("ProductId")?,
        m.opt_str("DeviceName")?,
    ) {
        (Some(id), None, None) => id,
        (None, Some(product), Some(device)) => format!("{product}{device}"),
        (None, None, None) => String::new(),
        _ => {
            return Err(ApiError::invalid(
                &field(m, "ClientId"),
                "give ClientId, or ProductId with DeviceName, not both",
            ));
        }
    };
    let client_ip = m.opt_str("ClientIp")?;
    if let Some(ip) = &client_ip
        && ip.parse::<IpAddr>().is_err()
    {
        return Err(ApiError::invalid(
            &field(m, "ClientIp"),
            format!("{ip:?} is not an IP address"),
        ));
    }
    let qos = m.opt_i64("Qos")?.unwrap_or(0);
    let qos = u8::try_from(qos).ok().filter(|q| *q <= 2).ok_or_else(|| {
        ApiError::invalid(&field(m, "Qos"), format!("must be 0, 1 or 2, got {qos}"))
    })?;
    m.finish()?;
    Ok(SampleMessage {
        topic,
        payload: payload.into(),
        client_id,
        client_ip,
        qos,
    })
}

/// The dotted name of a message's field, for errors (`Messages.0.Qos`).
fn field(m: &Params, key: &str) -> String {
    m.path_of(key)
}

/// Eddy's TestTopicRule: the engine evaluates `Sql` against `Messages`, with no side effect.
pub(super) async fn test(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let sql = decode_sql(&p.str("Sql")?)?;
    let actions = p.opt_str("Actions")?.unwrap_or_default();
    let messages = p.object_list("Messages")?;
    if messages.is_empty() || messages.len() > MAX_TEST_MESSAGES {
        return Err(ApiError::invalid(
            "Messages",
            format!(
                "must hold 1 to {MAX_TEST_MESSAGES} messages, got {}",
                messages.len()
            ),
        ));
    }
    let messages = messages.iter().map(sample).collect::<Result<Vec<_>, _>>()?;
    p.finish()?;
    let Some(engine) = &state.rules else {
        return Err(ApiError::new(
            "FailedOperation",
            "TestTopicRule needs the rule engine, and this hub runs without one.",
        ));
    };
    Ok(match engine.test(&sql, &actions, &messages)? {
        Value::Object(map) => map,
        other => object(json!({ "Result": other })),
    })
}

#[cfg(test)]
#[path = "rule_tests.rs"]
mod tests;
