//! Topic permissions of generic clients: ordered rules, first applicable wins.
//!
//! Publishing: a rule applies when the topic matches one of its patterns. Subscribing is
//! asymmetric on purpose, so that a wildcard can never reach more than the rules allow:
//! an allow rule applies only when it *covers* the filter (every topic the filter can match
//! is one of the rule's), a deny rule as soon as it *overlaps* the filter (some topic
//! matches both). `[deny secret/#, allow #]` therefore refuses a subscription to `#`.
//!
//! Placeholders are filled in per connection with values the client chose itself (its
//! client id, its username), so they must never widen a rule. A value that is empty or
//! holds `/`, `+`, `#` or U+0000, or that would move the pattern into the `$` namespace,
//! makes the pattern *unsafe*: an unsafe pattern in an allow rule matches nothing, in a
//! deny rule everything (`$` topics included). Anonymous clients have no username, so `%u`
//! is always unsafe for them.

use eddy_core::{Topic, TopicError, TopicFilter};

use super::{AclAction, AclRule, ClientIdentity, ClientsConfigError, Permission};

/// Why a rule's topic pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("unknown placeholder %{0} (use %c, %u, or %% for a literal %)")]
    UnknownPlaceholder(char),
    #[error("a % at the end must be written %%")]
    TrailingPercent,
    #[error(transparent)]
    Topic(#[from] TopicError),
}

/// One piece of a topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    ClientId,
    Username,
}

/// A rule's topic with its placeholders found. Patterns without placeholders are parsed
/// once, here; the others at each connection.
#[derive(Debug, Clone)]
enum Pattern {
    Fixed(TopicFilter),
    Template(Vec<Part>),
}

impl Pattern {
    fn parse(source: &str) -> Result<Self, PatternError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            let placeholder = match chars.next() {
                Some('%') => {
                    text.push('%');
                    continue;
                }
                Some('c') => Part::ClientId,
                Some('u') => Part::Username,
                Some(other) => return Err(PatternError::UnknownPlaceholder(other)),
                None => return Err(PatternError::TrailingPercent),
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(placeholder);
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if parts.iter().all(|p| matches!(p, Part::Text(_))) {
            return Ok(Self::Fixed(TopicFilter::parse(&Self::fill(
                &parts, "", "",
            ))?));
        }
        // A plain one-level value stands in for the placeholders, so that the template's
        // own wildcards and levels are checked now rather than at the first connection.
        let sample = Self::fill(&parts, "c", "u");
        TopicFilter::parse(&sample)?;
        Ok(Self::Template(parts))
    }

    fn fill(parts: &[Part], client_id: &str, username: &str) -> String {
        parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.as_str(),
                Part::ClientId => client_id,
                Part::Username => username,
            })
            .collect()
    }

    /// The filter this pattern grants `identity`, or `None` when it is unsafe.
    fn expand(&self, identity: &ClientIdentity) -> Option<TopicFilter> {
        let parts = match self {
            Self::Fixed(filter) => return Some(filter.clone()),
            Self::Template(parts) => parts,
        };
        let client_id = safe_value(Some(&identity.client_id));
        let username = safe_value(identity.username.as_deref());
        for part in parts {
            match part {
                Part::ClientId if client_id.is_none() => return None,
                Part::Username if username.is_none() => return None,
                _ => {}
            }
        }
        let expanded = Self::fill(
            parts,
            client_id.unwrap_or_default(),
            username.unwrap_or_default(),
        );
        // A leading placeholder must not carry the pattern into the `$` namespace, which
        // wildcard rules are careful never to reach (client id `$SYS` with `%c/#`).
        let template_is_system = matches!(parts.first(), Some(Part::Text(t)) if t.starts_with('$'));
        if expanded.starts_with('$') && !template_is_system {
            return None;
        }
        TopicFilter::parse(&expanded).ok()
    }
}

/// A placeholder value that cannot change the shape of a pattern, or `None`.
fn safe_value(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty() && !v.contains(['/', '+', '#', '\0']))
}

/// A validated rule, before placeholders are filled in.
#[derive(Debug, Clone)]
pub(super) struct CompiledRule {
    permission: Permission,
    action: AclAction,
    username: Option<String>,
    client_id: Option<String>,
    patterns: Vec<Pattern>,
}

impl CompiledRule {
    /// Checks rule `index` (counted from 0, for the error message).
    pub(super) fn new(index: usize, rule: AclRule) -> Result<Self, ClientsConfigError> {
        if rule.topics.is_empty() {
            return Err(ClientsConfigError::NoTopics { index });
        }
        if rule.client_id.as_deref() == Some("") {
            return Err(ClientsConfigError::EmptyRuleClientId { index });
        }
        let patterns = rule
            .topics
            .iter()
            .map(|source| {
                Pattern::parse(source).map_err(|reason| ClientsConfigError::BadTopicPattern {
                    index,
                    pattern: source.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            permission: rule.permission,
            action: rule.action,
            username: rule.username,
            client_id: rule.client_id,
            patterns,
        })
    }

    fn applies_to(&self, identity: &ClientIdentity) -> bool {
        self.username
            .as_deref()
            .is_none_or(|u| identity.username.as_deref() == Some(u))
            && self
                .client_id
                .as_deref()
                .is_none_or(|c| c == identity.client_id)
    }
}

/// One rule as it stands for one connection.
#[derive(Debug, Clone)]
struct Grant {
    permission: Permission,
    action: AclAction,
    filters: Vec<TopicFilter>,
    /// A deny rule with an unsafe pattern: it matches every topic and overlaps every filter.
    everything: bool,
}

/// The topic permissions of one connected generic client.
#[derive(Debug, Clone)]
pub struct ClientPermissions {
    grants: Vec<Grant>,
    no_match: Permission,
}

impl ClientPermissions {
    pub(super) fn new(
        rules: &[CompiledRule],
        identity: &ClientIdentity,
        no_match: Permission,
    ) -> Self {
        let grants = rules
            .iter()
            .filter(|rule| rule.applies_to(identity))
            .filter_map(|rule| {
                let mut filters = Vec::with_capacity(rule.patterns.len());
                let mut everything = false;
                for pattern in &rule.patterns {
                    match pattern.expand(identity) {
                        Some(filter) => filters.push(filter),
                        None => everything |= rule.permission == Permission::Deny,
                    }
                }
                // An allow rule whose patterns are all unsafe grants nothing: drop it, so
                // later rules decide as if it were not there.
                (everything || !filters.is_empty()).then_some(Grant {
                    permission: rule.permission,
                    action: rule.action,
                    filters,
                    everything,
                })
            })
            .collect();
        Self { grants, no_match }
    }

    /// Whether the client may publish to `topic`.
    pub fn may_publish(&self, topic: &Topic) -> bool {
        self.grants
            .iter()
            .filter(|g| g.action.publish())
            .find(|g| g.everything || g.filters.iter().any(|f| f.matches(topic)))
            .map_or(self.no_match, |g| g.permission)
            == Permission::Allow
    }

    /// Whether the client may subscribe to `filter` (allow rules must cover it, deny
    /// rules need only overlap it).
    pub fn may_subscribe(&self, filter: &TopicFilter) -> bool {
        self.grants
            .iter()
            .filter(|g| g.action.subscribe())
            .find(|g| match g.permission {
                Permission::Allow => g.filters.iter().any(|f| filter.is_covered_by(f)),
                Permission::Deny => g.everything || g.filters.iter().any(|f| filter.overlaps(f)),
            })
            .map_or(self.no_match, |g| g.permission)
            == Permission::Allow
    }
}
