//! MQTT topic names and topic filters (MQTT 3.1.1 §4.7, MQTT 5 §4.7), validated once at the
//! edge so the router and the ACL work on well-formed values only.
//!
//! A [`Topic`] is what a PUBLISH carries: at least one character, no `+` or `#`, no U+0000,
//! at most 65,535 bytes. A [`TopicFilter`] is what a SUBSCRIBE carries: `+` only as a whole
//! level, `#` only as the whole last level. Neither type knows Tencent's tighter limits
//! (255 bytes, a number of levels): those are per-device policy, checked by the broker.

/// Why a topic or filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("a topic must not be empty")]
    Empty,
    #[error("a topic must not be longer than 65535 bytes")]
    TooLong,
    #[error("a topic must not contain U+0000")]
    Nul,
    #[error("a topic name must not contain the wildcards + or #")]
    WildcardInName,
    #[error("'+' must fill a whole topic level")]
    BadSingleLevelWildcard,
    #[error("'#' must be the whole last topic level")]
    BadMultiLevelWildcard,
}

const MAX_BYTES: usize = 65_535;

fn check_common(value: &str) -> Result<(), TopicError> {
    if value.is_empty() {
        return Err(TopicError::Empty);
    }
    if value.len() > MAX_BYTES {
        return Err(TopicError::TooLong);
    }
    if value.contains('\0') {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// A topic name, as published to.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(String);

impl Topic {
    pub fn parse(value: &str) -> Result<Self, TopicError> {
        check_common(value)?;
        if value.contains(['+', '#']) {
            return Err(TopicError::WildcardInName);
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    /// Topics starting with `$` are never matched by filters starting with a wildcard.
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }
}

/// A topic filter, as subscribed to.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(String);

impl TopicFilter {
    pub fn parse(value: &str) -> Result<Self, TopicError> {
        check_common(value)?;
        let levels: Vec<&str> = value.split('/').collect();
        for (i, level) in levels.iter().enumerate() {
            if level.contains('+') && *level != "+" {
                return Err(TopicError::BadSingleLevelWildcard);
            }
            if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
                return Err(TopicError::BadMultiLevelWildcard);
            }
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    pub fn has_wildcards(&self) -> bool {
        self.0.contains(['+', '#'])
    }

    /// Whether `topic` is matched by this filter (with the `$`-topic rule).
    pub fn matches(&self, topic: &Topic) -> bool {
        if topic.is_system() && self.starts_with_wildcard() {
            return false;
        }
        let mut filter = self.levels();
        let mut name = topic.levels();
        loop {
            match (filter.next(), name.next()) {
                (Some("#"), _) => return true,
                (Some("+"), Some(_)) => {}
                (Some(f), Some(n)) if f == n => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    /// Whether every topic this filter can match is also matched by `wider`.
    ///
    /// Used by the ACL: a device may subscribe to a wildcard filter only when every topic
    /// it could receive is one it is allowed to receive.
    /// A `$` topic is matched only by filters that spell its first level out, so a filter
    /// naming a `$` first level is never covered by one that starts with a wildcard (`#`
    /// does not cover `$SYS/#`).
    pub fn is_covered_by(&self, wider: &TopicFilter) -> bool {
        if wider.starts_with_wildcard() && self.starts_with_system_level() {
            return false;
        }
        let mut narrow = self.levels();
        let mut wide = wider.levels();
        loop {
            match (narrow.next(), wide.next()) {
                (_, Some("#")) => return true,
                (Some("#"), _) => return false,
                (Some(_), Some("+")) => {}
                (Some("+"), Some(_)) => return false,
                (Some(n), Some(w)) if n == w => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    /// Whether some topic is matched by both this filter and `other` (with the `$`-topic
    /// rule).
    ///
    /// Used by deny rules: refusing a subscription that could receive even one denied
    /// topic, where coverage would let `a/#` through a rule denying `a/secret`.
    pub fn overlaps(&self, other: &TopicFilter) -> bool {
        // A filter starting with a wildcard matches no `$` topic, and one naming a `$`
        // first level matches only `$` topics: no topic can satisfy both.
        if (self.starts_with_wildcard() && other.starts_with_system_level())
            || (other.starts_with_wildcard() && self.starts_with_system_level())
        {
            return false;
        }
        let mut left = self.levels();
        let mut right = other.levels();
        loop {
            match (left.next(), right.next()) {
                // `#` matches every remainder, including none (`a/#` matches `a`).
                (Some("#"), _) | (_, Some("#")) => return true,
                (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
                (Some(l), Some(r)) if l == r => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    fn starts_with_wildcard(&self) -> bool {
        self.0.starts_with(['+', '#'])
    }

    /// Whether the first level is a literal `$…` level (so only `$` topics can match).
    fn starts_with_system_level(&self) -> bool {
        self.0.starts_with('$')
    }
}

string_newtype_display!(Topic, TopicFilter);

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Topic {
        Topic::parse(s).unwrap()
    }

    fn f(s: &str) -> TopicFilter {
        TopicFilter::parse(s).unwrap()
    }

    #[test]
    fn names_refuse_wildcards_nul_and_emptiness() {
        assert!(Topic::parse("a/b/c").is_ok());
        assert!(Topic::parse("/").is_ok(), "empty levels are legal");
        assert_eq!(Topic::parse(""), Err(TopicError::Empty));
        assert_eq!(Topic::parse("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(Topic::parse("a/#"), Err(TopicError::WildcardInName));
        assert_eq!(Topic::parse("a\0b"), Err(TopicError::Nul));
        assert_eq!(Topic::parse(&"x".repeat(65_536)), Err(TopicError::TooLong));
    }

    #[test]
    fn filters_follow_the_wildcard_rules() {
        for ok in ["#", "+", "a/+/c", "a/#", "+/+", "/+", "$SYS/#", "a//b"] {
            assert!(TopicFilter::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a/b#", "a/#/c", "a+", "a/+b", "##", ""] {
            assert!(TopicFilter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        assert!(f("a/+/c").matches(&t("a/b/c")));
        assert!(!f("a/+/c").matches(&t("a/b/d")));
        assert!(f("a/#").matches(&t("a")), "# also matches the parent level");
        assert!(f("a/#").matches(&t("a/b/c")));
        assert!(!f("a/+").matches(&t("a")));
        assert!(f("+/+").matches(&t("/x")));
        assert!(
            !f("#").matches(&t("$SYS/x")),
            "$ topics are not matched by a leading wildcard"
        );
        assert!(!f("+/x").matches(&t("$SYS/x")));
        assert!(f("$SYS/#").matches(&t("$SYS/x")));
        assert!(f("a/b").matches(&t("a/b")));
        assert!(!f("a/b").matches(&t("a/b/c")));
    }

    #[test]
    fn coverage_is_set_inclusion() {
        assert!(f("p/d/x").is_covered_by(&f("p/d/x")));
        assert!(f("p/d/x").is_covered_by(&f("p/d/+")));
        assert!(f("p/d/+").is_covered_by(&f("p/d/+")));
        assert!(!f("p/d/+").is_covered_by(&f("p/d/x")));
        assert!(
            !f("p/d/#").is_covered_by(&f("p/d/+")),
            "# reaches deeper than +"
        );
        assert!(f("p/d/+/y").is_covered_by(&f("p/d/#")));
        assert!(
            !f("p/+/x").is_covered_by(&f("p/d/x")),
            "another device's topics"
        );
        assert!(!f("p/d").is_covered_by(&f("p/d/x")));
        assert!(!f("p/d/x/y").is_covered_by(&f("p/d/x")));
    }

    #[test]
    fn coverage_keeps_the_dollar_rule() {
        assert!(
            !f("$SYS/x").is_covered_by(&f("#")),
            "# never matches $SYS/x"
        );
        assert!(!f("$SYS/#").is_covered_by(&f("#")));
        assert!(!f("$SYS/x").is_covered_by(&f("+/x")));
        assert!(f("$SYS/x").is_covered_by(&f("$SYS/#")));
        assert!(
            f("+/x").is_covered_by(&f("#")),
            "a leading wildcard matches no $ topic either"
        );
        assert!(!f("#").is_covered_by(&f("$SYS/#")));
    }

    #[test]
    fn overlap_is_a_shared_topic() {
        let overlapping = [
            ("a/b", "a/b"),
            ("a/+", "a/b"),
            ("a/#", "a/b/c"),
            ("a/#", "a"),
            ("#", "a/b"),
            ("+/b", "a/+"),
            ("+/+", "/x"),
            ("a/+/c", "a/#"),
            ("#", "+"),
            ("$SYS/#", "$SYS/+/x"),
            ("$SYS/x", "$SYS/+"),
            ("a//b", "a/+/b"),
        ];
        for (l, r) in overlapping {
            assert!(f(l).overlaps(&f(r)), "{l} and {r}");
            assert!(f(r).overlaps(&f(l)), "{r} and {l}");
        }
        let disjoint = [
            ("a/b", "a/c"),
            ("a/+", "a"),
            ("a/+", "a/b/c"),
            ("a/+/#", "a"),
            ("a/b", "a/b/c"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("#", "$SYS/#"),
            ("b/#", "a/#"),
        ];
        for (l, r) in disjoint {
            assert!(!f(l).overlaps(&f(r)), "{l} and {r}");
            assert!(!f(r).overlaps(&f(l)), "{r} and {l}");
        }
    }
}
