//! The loaded rules as one immutable set: compiled rules, grouped by FROM filter, with
//! the topic-filter index that finds a message's groups. A reload builds a new set
//! (reusing every unchanged compiled rule) and swaps it in whole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use eddy_core::FilterIndex;

use super::actions::{Action, ActionError, parse_actions};
use super::metrics::RuleMetrics;
use crate::{CompiledRule, RuleError, RuleStats};

/// A rule as stored: what the API's CreateTopicRule / ReplaceTopicRule carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDefinition {
    pub name: String,
    /// The SQL text (already base64-decoded).
    pub sql: String,
    /// Tencent's `Actions` JSON array.
    pub actions: String,
    /// Tencent's `ErrorActions` JSON array; may be empty.
    pub error_actions: String,
    pub enabled: bool,
}

/// Why a rule definition cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error(transparent)]
    Sql(#[from] RuleError),
    #[error("Actions: {0}")]
    Actions(ActionError),
    #[error("ErrorActions: {0}")]
    ErrorActions(ActionError),
}

impl DefinitionError {
    /// The Tencent Cloud API error code.
    pub fn tencent_code(&self) -> &'static str {
        match self {
            Self::Sql(e) => e.tencent_code(),
            Self::Actions(e) => e.tencent_code(),
            Self::ErrorActions(ActionError::Nil) => "InvalidParameterValue",
            Self::ErrorActions(e) => e.tencent_code(),
        }
    }
}

/// One enabled rule, compiled, with its actions and counters.
#[derive(Debug)]
pub(crate) struct LoadedRule {
    pub(crate) definition: RuleDefinition,
    pub(crate) compiled: CompiledRule,
    pub(crate) actions: Vec<Action>,
    pub(crate) error_actions: Vec<Action>,
    pub(crate) metrics: Arc<RuleMetrics>,
    /// The compiled rule's counters as last read, to add only what is new to `metrics`.
    seen: Mutex<RuleStats>,
}

impl LoadedRule {
    pub(crate) fn compile(
        definition: &RuleDefinition,
        metrics: Arc<RuleMetrics>,
    ) -> Result<Self, DefinitionError> {
        let compiled = CompiledRule::from_sql(&definition.sql)?;
        let actions =
            parse_actions(&definition.actions, false).map_err(DefinitionError::Actions)?;
        let error_actions = parse_actions(&definition.error_actions, true)
            .map_err(DefinitionError::ErrorActions)?;
        Ok(Self {
            definition: definition.clone(),
            compiled,
            actions,
            error_actions,
            metrics,
            seen: Mutex::default(),
        })
    }

    /// Moves what the compiled rule's decoder counted since last time into `metrics`.
    pub(crate) fn collect_decode_stats(&self) {
        let now = self.compiled.stats();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        self.metrics.decoded(RuleStats {
            rows: now.rows - seen.rows,
            not_json: now.not_json - seen.not_json,
            missing_fields: now.missing_fields - seen.missing_fields,
            type_mismatches: now.type_mismatches - seen.type_mismatches,
        });
        *seen = now;
    }

    fn same_definition(&self, other: &RuleDefinition) -> bool {
        self.definition.sql == other.sql
            && self.definition.actions == other.actions
            && self.definition.error_actions == other.error_actions
    }
}

/// Rules sharing one FROM filter: a message matching it is batched once for all of them.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) rules: Vec<usize>,
}

#[derive(Debug, Default)]
pub(crate) struct RuleSet {
    pub(crate) rules: Vec<Arc<LoadedRule>>,
    pub(crate) groups: Vec<Group>,
    /// FROM filter → index into `groups`.
    pub(crate) index: FilterIndex<usize>,
}

impl RuleSet {
    /// The set for `definitions`: enabled rules only; rules unchanged since `previous`
    /// keep their compiled form. Rules that do not compile are left out and returned.
    pub(crate) fn build(
        definitions: &[RuleDefinition],
        previous: &RuleSet,
        metrics_of: &mut impl FnMut(&str) -> Arc<RuleMetrics>,
    ) -> (Self, Vec<(String, DefinitionError)>) {
        let reusable: HashMap<&str, &Arc<LoadedRule>> = previous
            .rules
            .iter()
            .map(|r| (r.definition.name.as_str(), r))
            .collect();
        let mut set = RuleSet::default();
        let mut by_filter: HashMap<String, usize> = HashMap::new();
        let mut failed = Vec::new();
        for definition in definitions.iter().filter(|d| d.enabled) {
            let rule = match reusable.get(definition.name.as_str()) {
                Some(r) if r.same_definition(definition) => Arc::clone(r),
                _ => match LoadedRule::compile(definition, metrics_of(&definition.name)) {
                    Ok(r) => Arc::new(r),
                    Err(e) => {
                        failed.push((definition.name.clone(), e));
                        continue;
                    }
                },
            };
            let filter = rule.compiled.topic_filter().clone();
            let group = *by_filter
                .entry(filter.as_str().to_owned())
                .or_insert_with(|| {
                    set.index.insert(&filter, set.groups.len());
                    set.groups.push(Group { rules: Vec::new() });
                    set.groups.len() - 1
                });
            set.groups[group].rules.push(set.rules.len());
            set.rules.push(rule);
        }
        (set, failed)
    }
}
