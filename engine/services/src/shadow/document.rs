//! The shadow document and Tencent's rules for changing it, without I/O: merging a
//! section, the delta between desired and reported, the version check and the limits.

use serde_json::{Map, Value};

/// Bounds on one shadow document (Tencent: depth 5, 20 properties, 16 KB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowLimits {
    /// Deepest nesting of objects and arrays inside `reported` or `desired` (a top-level
    /// property is at depth 1).
    pub max_depth: usize,
    /// Most top-level properties in `reported`, and in `desired`.
    pub max_properties: usize,
    /// Largest document (`{"reported":…,"desired":…}` as compact JSON), in bytes.
    pub max_bytes: usize,
}

impl Default for ShadowLimits {
    fn default() -> Self {
        Self {
            max_depth: 5,
            max_properties: 20,
            max_bytes: 16 * 1024,
        }
    }
}

/// Why an update was refused; [`ShadowError::code`] is the `result` the device sees.
/// Tencent documents only 5005 (version conflict); the other codes are Eddy's, in the same
/// range, and every failed reply also says why in `"message"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShadowError {
    /// The request is not a JSON object with a known `type`, or its `state` is malformed.
    #[error("invalid shadow request: {0}")]
    Invalid(String),
    /// The request's version is not the document's.
    #[error("version {given} does not match the shadow's version {current}")]
    VersionConflict { given: i64, current: i64 },
    /// The document would break a limit.
    #[error("the shadow document would exceed its limits: {0}")]
    TooLarge(String),
    /// The store failed.
    #[error("the shadow could not be stored: {0}")]
    Internal(String),
}

impl ShadowError {
    /// The `result` code in the reply (Tencent's: 5005 is a version conflict).
    pub fn code(&self) -> i64 {
        match self {
            Self::Invalid(_) => 5001,
            Self::VersionConflict { .. } => 5005,
            Self::TooLarge(_) => 5006,
            Self::Internal(_) => 5000,
        }
    }
}

/// A shadow as stored: the two sections, their version and time of the last write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub reported: Map<String, Value>,
    pub desired: Map<String, Value>,
    /// 0 until the first write.
    pub version: i64,
    /// Unix milliseconds of the last write (0 before the first).
    pub timestamp_ms: i64,
}

/// One change to a document: each section is left alone (`None`), cleared (`Some(None)`,
/// Tencent's `"desired": null`) or merged with / replaced by an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    pub reported: Option<Option<Map<String, Value>>>,
    pub desired: Option<Option<Map<String, Value>>>,
    /// Replace `reported` instead of merging into it (Tencent's `overwriteUpdate`).
    pub overwrite: bool,
}

impl Change {
    /// Reads Tencent's `state` object: `reported` and/or `desired`, each an object or null.
    pub fn from_state(state: &Value, overwrite: bool) -> Result<Self, ShadowError> {
        let state = state
            .as_object()
            .ok_or_else(|| ShadowError::Invalid("\"state\" must be an object".into()))?;
        let mut change = Change {
            overwrite,
            ..Change::default()
        };
        for (key, value) in state {
            let section = match value {
                Value::Null => None,
                Value::Object(map) => Some(map.clone()),
                _ => {
                    return Err(ShadowError::Invalid(format!(
                        "\"state.{key}\" must be an object or null"
                    )));
                }
            };
            match key.as_str() {
                "reported" => change.reported = Some(section),
                "desired" => change.desired = Some(section),
                other => {
                    return Err(ShadowError::Invalid(format!(
                        "\"state\" may hold \"reported\" and \"desired\", not {other:?}"
                    )));
                }
            }
        }
        if change.reported.is_none() && change.desired.is_none() {
            return Err(ShadowError::Invalid(
                "\"state\" must hold \"reported\" or \"desired\"".into(),
            ));
        }
        Ok(change)
    }

    /// Whether it touches `desired` (a delta may then be due).
    pub fn touches_desired(&self) -> bool {
        self.desired.is_some()
    }

    /// The change as Tencent's `state` object, for the update reply.
    pub fn state(&self) -> Value {
        let mut state = Map::new();
        for (name, section) in [("reported", &self.reported), ("desired", &self.desired)] {
            if let Some(section) = section {
                let value = section.clone().map_or(Value::Null, Value::Object);
                state.insert(name.to_owned(), value);
            }
        }
        Value::Object(state)
    }
}

impl Document {
    /// Whether a writer that read version `expected` may write now.
    pub fn check_version(&self, expected: i64) -> Result<(), ShadowError> {
        if expected == self.version {
            Ok(())
        } else {
            Err(ShadowError::VersionConflict {
                given: expected,
                current: self.version,
            })
        }
    }

    /// Applies `change` as the write after `self` (version + 1, at `now_ms`) and checks the
    /// result against `limits`.
    pub fn apply(
        &self,
        change: &Change,
        limits: &ShadowLimits,
        now_ms: i64,
    ) -> Result<Document, ShadowError> {
        let mut next = self.clone();
        if let Some(reported) = &change.reported {
            apply_section(&mut next.reported, reported.as_ref(), change.overwrite);
        }
        if let Some(desired) = &change.desired {
            apply_section(&mut next.desired, desired.as_ref(), false);
        }
        next.check(limits)?;
        next.version = self.version + 1;
        next.timestamp_ms = now_ms.max(self.timestamp_ms);
        Ok(next)
    }

    /// What `desired` asks that `reported` does not show yet: every desired property whose
    /// reported value differs (objects compared property by property).
    pub fn delta(&self) -> Map<String, Value> {
        delta(&self.desired, &self.reported)
    }

    fn check(&self, limits: &ShadowLimits) -> Result<(), ShadowError> {
        for (name, section) in [("reported", &self.reported), ("desired", &self.desired)] {
            if section.len() > limits.max_properties {
                return Err(ShadowError::TooLarge(format!(
                    "{name} has {} properties; at most {} are allowed",
                    section.len(),
                    limits.max_properties
                )));
            }
            let depth = section.values().map(depth).max().unwrap_or(0) + 1;
            if !section.is_empty() && depth > limits.max_depth {
                return Err(ShadowError::TooLarge(format!(
                    "{name} nests {depth} levels deep; at most {} are allowed",
                    limits.max_depth
                )));
            }
        }
        let bytes = self.sections_json().len();
        if bytes > limits.max_bytes {
            return Err(ShadowError::TooLarge(format!(
                "the document has {bytes} bytes; at most {} are allowed",
                limits.max_bytes
            )));
        }
        Ok(())
    }

    /// `{"reported":…,"desired":…}`, as the size limit counts it.
    fn sections_json(&self) -> String {
        serde_json::json!({ "reported": self.reported, "desired": self.desired }).to_string()
    }
}

/// Clears `section` (`None`), replaces it, or merges `patch` into it: objects merge
/// property by property, `null` removes a property, anything else replaces it.
fn apply_section(
    section: &mut Map<String, Value>,
    patch: Option<&Map<String, Value>>,
    overwrite: bool,
) {
    match patch {
        None => section.clear(),
        Some(patch) if overwrite => {
            *section = patch.clone();
            section.retain(|_, v| !v.is_null());
        }
        Some(patch) => merge(section, patch),
    }
}

fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => match target.get_mut(key) {
                Some(Value::Object(existing)) => merge(existing, inner),
                _ => {
                    let mut fresh = Map::new();
                    merge(&mut fresh, inner);
                    target.insert(key.clone(), Value::Object(fresh));
                }
            },
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

fn delta(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, want) in desired {
        match (want, reported.get(key)) {
            (Value::Object(want), Some(Value::Object(have))) => {
                let inner = delta(want, have);
                if !inner.is_empty() {
                    out.insert(key.clone(), Value::Object(inner));
                }
            }
            (want, Some(have)) if want == have => {}
            (want, _) => {
                out.insert(key.clone(), want.clone());
            }
        }
    }
    out
}

/// Nesting below a value: 0 for a scalar, 1 + the deepest child for objects and arrays.
/// Iterative, so a hostile document cannot exhaust the stack.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        deepest = deepest.max(level);
        match value {
            Value::Object(map) => stack.extend(map.values().map(|v| (v, level + 1))),
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, level + 1))),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn change(state: Value) -> Change {
        Change::from_state(&state, false).unwrap()
    }

    const LIMITS: ShadowLimits = ShadowLimits {
        max_depth: 5,
        max_properties: 20,
        max_bytes: 16 * 1024,
    };

    #[test]
    fn merges_reported_and_removes_nulls() {
        let doc = Document::default();
        let doc = doc
            .apply(
                &change(json!({"reported": {"a": 1, "o": {"x": 1, "y": 2}}})),
                &LIMITS,
                10,
            )
            .unwrap();
        assert_eq!(doc.version, 1);
        assert_eq!(doc.timestamp_ms, 10);
        let doc = doc
            .apply(
                &change(json!({"reported": {"a": null, "o": {"y": 3}, "b": "s"}})),
                &LIMITS,
                20,
            )
            .unwrap();
        assert_eq!(
            Value::Object(doc.reported.clone()),
            json!({"o": {"x": 1, "y": 3}, "b": "s"})
        );
        assert_eq!(doc.version, 2);
    }

    #[test]
    fn overwrite_replaces_reported_and_null_clears_desired() {
        let doc = Document {
            reported: object(json!({"a": 1, "b": 2})),
            desired: object(json!({"a": 5})),
            version: 3,
            timestamp_ms: 1,
        };
        let over = Change::from_state(&json!({"reported": {"c": 3}}), true).unwrap();
        let next = doc.apply(&over, &LIMITS, 2).unwrap();
        assert_eq!(Value::Object(next.reported.clone()), json!({"c": 3}));
        let next = next
            .apply(&change(json!({"desired": null})), &LIMITS, 3)
            .unwrap();
        assert!(next.desired.is_empty());
        assert_eq!(next.version, 5);
    }

    #[test]
    fn version_must_match() {
        let doc = Document {
            version: 4,
            ..Document::default()
        };
        assert_eq!(
            doc.check_version(3),
            Err(ShadowError::VersionConflict {
                given: 3,
                current: 4
            })
        );
        assert_eq!(doc.check_version(5).unwrap_err().code(), 5005);
        assert_eq!(doc.check_version(4), Ok(()));
        let c = change(json!({"reported": {"a": 1}}));
        assert_eq!(doc.apply(&c, &LIMITS, 1).unwrap().version, 5);
    }

    #[test]
    fn delta_lists_what_reported_lacks() {
        let doc = Document {
            reported: object(json!({"on": true, "t": 20, "o": {"x": 1, "y": 2}})),
            desired: object(json!({"on": true, "t": 25, "o": {"x": 1, "y": 5}, "new": [1]})),
            ..Document::default()
        };
        assert_eq!(
            Value::Object(doc.delta()),
            json!({"t": 25, "o": {"y": 5}, "new": [1]})
        );
    }

    #[test]
    fn state_must_name_known_sections() {
        for bad in [
            json!([]),
            json!({}),
            json!({"reported": 1}),
            json!({"metadata": {}}),
        ] {
            assert!(
                matches!(
                    Change::from_state(&bad, false),
                    Err(ShadowError::Invalid(_))
                ),
                "{bad}"
            );
        }
        let c = change(json!({"reported": {"a": 1}, "desired": null}));
        assert_eq!(c.state(), json!({"reported": {"a": 1}, "desired": null}));
    }

    #[test]
    fn limits_hold() {
        let doc = Document::default();
        // Five levels of properties are allowed, six are not.
        let deep = json!({"reported": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}});
        assert_eq!(
            doc.apply(&change(deep), &LIMITS, 1).unwrap_err().code(),
            5006
        );
        let ok = json!({"reported": {"a": {"b": {"c": {"d": {"e": 1}}}}}});
        assert!(doc.apply(&change(ok), &LIMITS, 1).is_ok());
        let many: Map<String, Value> = (0..21).map(|i| (format!("p{i}"), json!(i))).collect();
        let many = json!({ "desired": many });
        assert!(matches!(
            doc.apply(&change(many), &LIMITS, 1),
            Err(ShadowError::TooLarge(_))
        ));
        let big = json!({"reported": {"s": "x".repeat(17 * 1024)}});
        assert!(matches!(
            doc.apply(&change(big), &LIMITS, 1),
            Err(ShadowError::TooLarge(_))
        ));
    }
}
