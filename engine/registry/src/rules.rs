//! Topic rules (`CreateTopicRule` and friends): Tencent's checks on what a rule may hold,
//! and its lifecycle over the store.
//!
//! Validation here is what the registry can judge alone: the name, the base64 and UTF-8
//! of the SQL, the shape and count of the actions, the number of rules. Compiling the SQL
//! and understanding each action's type is the rule engine's job (the API asks it through
//! a hook before anything is stored); this crate never depends on it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eddy_core::time::unix_now;
use eddy_store::{Page, Paged, StoreError, TopicRuleChange, TopicRuleRecord};

use crate::{Registry, RegistryError, Result};

/// Most actions one rule (or its error actions) may have: Tencent's "≤5 actions per rule".
pub const MAX_ACTIONS_PER_RULE: usize = 5;

/// Default for [`Registry::with_max_rules`]: Tencent's current limit per account.
pub const DEFAULT_MAX_RULES: u64 = 1000;

/// Longest rule name.
pub const MAX_RULE_NAME_LEN: usize = 32;

/// A rule name: 1–32 characters of `[A-Za-z0-9_]`.
///
/// Tencent's API reference gives `RuleName` as a plain string without a pattern, and no
/// public source found states the console's constraint; this is the conservative form
/// (what AWS IoT accepts, cut to the 32 characters of Tencent's other names). Widening it
/// later breaks nobody; narrowing it would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleName(String);

impl RuleName {
    pub fn parse(value: &str) -> Result<Self> {
        if value.is_empty() || value.len() > MAX_RULE_NAME_LEN {
            return Err(RegistryError::invalid(
                "RuleName",
                format!(
                    "must be 1 to {MAX_RULE_NAME_LEN} characters, got {}",
                    value.len()
                ),
            ));
        }
        if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            return Err(RegistryError::invalid(
                "RuleName",
                format!("may hold only letters, digits and '_', found {c:?}"),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RuleName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A rule's content as the API gives it, checked: [`TopicRuleContent::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRuleContent {
    /// Decoded SQL.
    pub sql: String,
    /// A non-empty JSON array of actions, as given.
    pub actions: String,
    /// A JSON array of actions, or `""` for none.
    pub error_actions: String,
    pub description: String,
}

impl TopicRuleContent {
    /// Checks Tencent's `TopicRulePayload`: `sql_base64` must decode to UTF-8 SQL,
    /// `actions` must be a JSON array of 1–[`MAX_ACTIONS_PER_RULE`] one-key objects, and
    /// `error_actions` the same or empty.
    pub fn parse(
        sql_base64: &str,
        actions: Option<&str>,
        error_actions: Option<&str>,
        description: String,
    ) -> Result<Self> {
        let sql = decode_sql(sql_base64)?;
        let actions = actions.map(str::trim).unwrap_or_default();
        if actions.is_empty() {
            return Err(RegistryError::ActionNil(
                "TopicRulePayload.Actions is empty: a rule needs at least one action".into(),
            ));
        }
        if check_actions("TopicRulePayload.Actions", actions)? == 0 {
            return Err(RegistryError::ActionNil(
                "TopicRulePayload.Actions is an empty list: a rule needs at least one action"
                    .into(),
            ));
        }
        let error_actions = error_actions.map(str::trim).unwrap_or_default();
        let error_actions = if error_actions.is_empty()
            || check_actions("TopicRulePayload.ErrorActions", error_actions)? == 0
        {
            String::new()
        } else {
            error_actions.to_owned()
        };
        Ok(Self {
            sql,
            actions: actions.to_owned(),
            error_actions,
            description,
        })
    }
}

/// Decodes the API's base64 SQL. Tencent answers `InvalidParameterValue.InvalidSQL` for
/// SQL it cannot read, so undecodable base64 gets that code too.
pub fn decode_sql(sql_base64: &str) -> Result<String> {
    let bytes = STANDARD.decode(sql_base64.trim()).map_err(|e| {
        RegistryError::InvalidSql(format!("TopicRulePayload.Sql is not valid base64: {e}"))
    })?;
    let sql = String::from_utf8(bytes).map_err(|_| {
        RegistryError::InvalidSql("TopicRulePayload.Sql does not decode to UTF-8 text".into())
    })?;
    if sql.trim().is_empty() {
        return Err(RegistryError::InvalidSql(
            "TopicRulePayload.Sql is empty".into(),
        ));
    }
    Ok(sql)
}

/// Checks an actions text; returns how many actions it holds.
fn check_actions(field: &str, text: &str) -> Result<usize> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| RegistryError::invalid(field, format!("is not valid JSON: {e}")))?;
    let serde_json::Value::Array(items) = value else {
        return Err(RegistryError::invalid(
            field,
            "must be a JSON array of actions, e.g. [{\"republish\":{\"topic\":\"pid/dn/x\"}}]",
        ));
    };
    if items.len() > MAX_ACTIONS_PER_RULE {
        return Err(RegistryError::invalid(
            field,
            format!(
                "holds {} actions; a rule may have at most {MAX_ACTIONS_PER_RULE}",
                items.len()
            ),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        match item {
            serde_json::Value::Object(map) if map.len() == 1 => {}
            _ => {
                return Err(RegistryError::invalid(
                    &format!("{field}[{i}]"),
                    "must be an object with exactly one key, the action type \
                     (e.g. {\"republish\":{…}})",
                ));
            }
        }
    }
    Ok(items.len())
}

/// The topic filter in a rule's `FROM '…'`, for `ListTopicRules`' `TopicPattern`.
/// Best effort (the rule engine owns real parsing): `""` when there is none.
pub fn topic_pattern(sql: &str) -> String {
    let mut chars = sql.char_indices().peekable();
    let mut word_start: Option<usize> = None;
    while let Some((i, c)) = chars.next() {
        if c == '\'' || c == '"' {
            // Skip a quoted string or identifier ('' and "" escape the quote).
            while let Some((_, q)) = chars.next() {
                if q == c {
                    if chars.peek().is_some_and(|(_, n)| *n == c) {
                        chars.next();
                    } else {
                        break;
                    }
                }
            }
            word_start = None;
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            word_start.get_or_insert(i);
            let ends = chars
                .peek()
                .is_none_or(|(_, n)| !(n.is_alphanumeric() || *n == '_'));
            if ends {
                let start = word_start.take().unwrap_or(i);
                if sql[start..i + c.len_utf8()].eq_ignore_ascii_case("from") {
                    let rest = sql[i + c.len_utf8()..].trim_start();
                    if let Some(body) = rest.strip_prefix('\'') {
                        return quoted(body);
                    }
                }
            }
        } else {
            word_start = None;
        }
    }
    String::new()
}

/// The text of a single-quoted SQL string whose opening quote is already consumed.
fn quoted(body: &str) -> String {
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
            } else {
                return out;
            }
        }
        out.push(c);
    }
    String::new()
}

impl Registry {
    /// Stores a new rule (checked by [`RuleName::parse`] and [`TopicRuleContent::parse`]).
    pub async fn create_topic_rule(
        &self,
        name: &RuleName,
        content: TopicRuleContent,
        disabled: bool,
    ) -> Result<TopicRuleRecord> {
        // Counted before the insert, so concurrent creates may pass the limit by a few;
        // it guards against runaway scripts, not against a race.
        let count = self
            .store
            .list_topic_rules(Page {
                offset: 0,
                limit: 0,
            })
            .await?;
        if count.total >= self.max_rules {
            return Err(RegistryError::RuleLimit(self.max_rules));
        }
        let now = unix_now();
        let record = TopicRuleRecord {
            name: name.to_string(),
            sql: content.sql,
            actions: content.actions,
            error_actions: content.error_actions,
            description: content.description,
            disabled,
            created_at: now,
            modified_at: now,
        };
        match self.store.insert_topic_rule(&record).await {
            Ok(()) => Ok(record),
            Err(StoreError::Conflict { .. }) => {
                Err(RegistryError::TopicRuleExists(name.to_string()))
            }
            Err(err) => Err(err.into()),
        }
    }

    pub async fn topic_rule(&self, name: &str) -> Result<TopicRuleRecord> {
        self.store
            .topic_rule(name)
            .await?
            .ok_or_else(|| RegistryError::TopicRuleNotFound(name.to_owned()))
    }

    pub async fn list_topic_rules(&self, page: Page) -> Result<Paged<TopicRuleRecord>> {
        Ok(self.store.list_topic_rules(page).await?)
    }

    /// Every rule, enabled and disabled: what the rule engine loads.
    pub async fn all_topic_rules(&self) -> Result<Vec<TopicRuleRecord>> {
        Ok(self.store.all_topic_rules().await?)
    }

    /// Replaces a rule's content; `disabled: None` keeps its state.
    pub async fn replace_topic_rule(
        &self,
        name: &str,
        content: TopicRuleContent,
        disabled: Option<bool>,
    ) -> Result<()> {
        let change = TopicRuleChange {
            sql: content.sql,
            actions: content.actions,
            error_actions: content.error_actions,
            description: content.description,
            disabled,
            modified_at: unix_now(),
        };
        if self.store.replace_topic_rule(name, &change).await? {
            Ok(())
        } else {
            Err(RegistryError::TopicRuleNotFound(name.to_owned()))
        }
    }

    /// Enables or disables a rule. Like Tencent, asking for the state it already has is
    /// an error (`FailedOperation.RuleAlreadyEnabled` / `…Disabled`).
    pub async fn set_topic_rule_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        let current = self.topic_rule(name).await?;
        if current.disabled != enabled {
            return Err(if enabled {
                RegistryError::RuleAlreadyEnabled(name.to_owned())
            } else {
                RegistryError::RuleAlreadyDisabled(name.to_owned())
            });
        }
        if self
            .store
            .set_topic_rule_disabled(name, !enabled, unix_now())
            .await?
        {
            Ok(())
        } else {
            Err(RegistryError::TopicRuleNotFound(name.to_owned()))
        }
    }

    pub async fn delete_topic_rule(&self, name: &str) -> Result<()> {
        if self.store.delete_topic_rule(name).await? {
            Ok(())
        } else {
            Err(RegistryError::TopicRuleNotFound(name.to_owned()))
        }
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
