//! The rule engine as the API sees it.
//!
//! This crate must not depend on `eddy-rules` (DataFusion is heavy, and the API only
//! needs four questions answered), so the engine is reached through [`RuleEngineHook`],
//! which the `eddy` binary implements over the real engine and hands to
//! [`ApiState::with_rules`](crate::ApiState::with_rules).
//!
//! Write order for every rule action: the registry's own checks, then
//! [`RuleEngineHook::check`], then the store, then [`RuleEngineHook::reload`] with the
//! complete list. A rule that fails to compile is therefore never stored, and the engine
//! always runs what the store holds.

use crate::error::ApiError;

/// The rule engine as the API sees it; the `eddy` binary wires the real one in.
pub trait RuleEngineHook: Send + Sync + std::fmt::Debug + 'static {
    /// Compiles `sql` and parses `actions`/`error_actions` without keeping them: Err is
    /// the ApiError to return (InvalidSQL with position, ActionNil, unsupported action
    /// type…). `error_actions` is `""` when the rule has none.
    fn check(&self, sql: &str, actions: &str, error_actions: &str) -> Result<(), ApiError>;
    /// The stored rules changed; `rules` is the complete current list (enabled and
    /// disabled). Called after every successful write.
    fn reload(&self, rules: Vec<eddy_store::TopicRuleRecord>);
    /// Per-rule counters as a JSON object, if the rule is loaded.
    fn stats(&self, rule_name: &str) -> Option<serde_json::Value>;
    /// Dry run: evaluates sql against sample messages, no side effects; returns the JSON
    /// to put in the response. `actions` is `""` when the caller gave none.
    fn test(
        &self,
        sql: &str,
        actions: &str,
        messages: &[SampleMessage],
    ) -> Result<serde_json::Value, ApiError>;
}

/// One message for [`RuleEngineHook::test`], as if a device had published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleMessage {
    pub topic: String,
    pub payload: bytes::Bytes,
    /// The publisher's ClientId (`${ProductId}${DeviceName}` for a device), or `""`.
    pub client_id: String,
    pub client_ip: Option<String>,
    pub qos: u8,
}
