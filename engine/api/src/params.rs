//! Reading an action's parameters with errors that name the field.
//!
//! Parameters arrive as a JSON object (POST) or as flattened query pairs (GET, where
//! every value is a string and `A.B` / `A.0` address nested fields). Each accessor says
//! `MissingParameter` or `InvalidParameterValue` with the field's dotted name. A handler
//! reads the fields it knows, names the Tencent fields it accepts but ignores, and calls
//! [`Params::finish`], which refuses any other field as `UnknownParameter` — a typo never
//! passes silently.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value};

use crate::error::ApiError;

#[derive(Debug)]
pub struct Params {
    prefix: String,
    map: Map<String, Value>,
    /// GET requests carry numbers and booleans as strings.
    lenient: bool,
    /// Fields read or ignored so far (a Mutex only so handler futures stay `Send`).
    seen: Mutex<BTreeSet<String>>,
}

impl Params {
    pub fn new(map: Map<String, Value>, lenient: bool) -> Self {
        Self {
            prefix: String::new(),
            map,
            lenient,
            seen: Mutex::default(),
        }
    }

    fn seen(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The dotted name of a field, as errors give it (`Messages.0.Qos`).
    pub fn path_of(&self, key: &str) -> String {
        self.path(key)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.seen().insert(key.to_owned());
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ApiError::invalid(
                &self.path(key),
                format!("expected a string, got {}", kind(other)),
            )),
        }
    }

    pub fn str(&self, key: &str) -> Result<String, ApiError> {
        self.opt_str(key)?
            .ok_or_else(|| ApiError::missing(&self.path(key)))
    }

    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                ApiError::invalid(&self.path(key), format!("expected an integer, got {n}"))
            }),
            Some(Value::String(s)) if self.lenient => s.parse().map(Some).map_err(|_| {
                ApiError::invalid(&self.path(key), format!("expected an integer, got {s:?}"))
            }),
            Some(other) => Err(ApiError::invalid(
                &self.path(key),
                format!("expected an integer, got {}", kind(other)),
            )),
        }
    }

    pub fn i64(&self, key: &str) -> Result<i64, ApiError> {
        self.opt_i64(key)?
            .ok_or_else(|| ApiError::missing(&self.path(key)))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if self.lenient => match s.as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(ApiError::invalid(
                    &self.path(key),
                    format!("expected true or false, got {s:?}"),
                )),
            },
            Some(other) => Err(ApiError::invalid(
                &self.path(key),
                format!("expected a boolean, got {}", kind(other)),
            )),
        }
    }

    /// The array under `key` (required), whose items are `what`, for the error message.
    fn array(&self, key: &str, what: &str) -> Result<&Vec<Value>, ApiError> {
        let value = self
            .get(key)
            .ok_or_else(|| ApiError::missing(&self.path(key)))?;
        match value {
            Value::Array(items) => Ok(items),
            _ => Err(ApiError::invalid(
                &self.path(key),
                format!("expected an array of {what}, got {}", kind(value)),
            )),
        }
    }

    /// A list of objects, each read with the same rules (`Key.0.Field` in errors).
    pub fn object_list(&self, key: &str) -> Result<Vec<Params>, ApiError> {
        self.array(key, "objects")?
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(map) => Ok(Params {
                    prefix: format!("{}.{i}.", self.path(key)),
                    map: map.clone(),
                    lenient: self.lenient,
                    seen: Mutex::default(),
                }),
                other => Err(ApiError::invalid(
                    &format!("{}.{i}", self.path(key)),
                    format!("expected an object, got {}", kind(other)),
                )),
            })
            .collect()
    }

    /// A list of strings; GET sends it as `Key.0`, `Key.1`, ….
    pub fn str_list(&self, key: &str) -> Result<Vec<String>, ApiError> {
        self.array(key, "strings")?
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(ApiError::invalid(
                    &format!("{}.{i}", self.path(key)),
                    format!("expected a string, got {}", kind(other)),
                )),
            })
            .collect()
    }

    /// Whether `key` is present and not null (marks it read).
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A nested object, read with the same rules.
    pub fn opt_object(&self, key: &str) -> Result<Option<Params>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Params {
                prefix: format!("{}.", self.path(key)),
                map: map.clone(),
                lenient: self.lenient,
                seen: Mutex::default(),
            })),
            Some(other) => Err(ApiError::invalid(
                &self.path(key),
                format!("expected an object, got {}", kind(other)),
            )),
        }
    }

    /// Marks Tencent fields that Eddy accepts and does not use.
    pub fn ignore(&self, keys: &[&str]) {
        let mut seen = self.seen();
        for key in keys {
            seen.insert((*key).to_owned());
        }
    }

    /// Refuses fields the handler neither read nor ignored.
    pub fn finish(&self) -> Result<(), ApiError> {
        let seen = self.seen();
        match self.map.keys().find(|k| !seen.contains(*k)) {
            None => Ok(()),
            Some(unknown) => Err(ApiError::new(
                "UnknownParameter",
                format!("The parameter `{}` is not recognized.", self.path(unknown)),
            )),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Turns GET query pairs (`A=1&B.C=x&D.0=y`) into the JSON object a POST would carry.
/// Values stay strings; [`Params`] in lenient mode parses numbers from them.
pub fn from_query_pairs(pairs: Vec<(String, String)>) -> Result<Map<String, Value>, ApiError> {
    let mut root = Value::Object(Map::new());
    for (key, value) in pairs {
        let mut node = &mut root;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let next_is_index = parts.get(i + 1).is_some_and(|p| p.parse::<usize>().is_ok());
            let fresh = || {
                if last {
                    Value::String(value.clone())
                } else if next_is_index {
                    Value::Array(Vec::new())
                } else {
                    Value::Object(Map::new())
                }
            };
            node = match node {
                Value::Object(map) => map.entry((*part).to_owned()).or_insert_with(fresh),
                Value::Array(items) => {
                    let index: usize = part.parse().map_err(|_| {
                        ApiError::invalid(&key, "mixes list indices and field names")
                    })?;
                    if index > items.len() {
                        return Err(ApiError::invalid(
                            &key,
                            "list indices must start at 0 with no gaps",
                        ));
                    }
                    if index == items.len() {
                        items.push(fresh());
                    }
                    &mut items[index]
                }
                _ => {
                    return Err(ApiError::invalid(
                        &key,
                        "is given both as a value and as a container",
                    ));
                }
            };
        }
    }
    match root {
        Value::Object(map) => Ok(map),
        _ => Ok(Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Params {
        let Value::Object(map) = v else { panic!() };
        Params::new(map, false)
    }

    #[test]
    fn errors_name_the_field() {
        let p = params(json!({"ProductId": 5, "Props": {"EncryptionType": 2}}));
        assert_eq!(
            p.str("ProductId").unwrap_err().message,
            "The value of parameter `ProductId` is invalid: expected a string, got a number"
        );
        assert_eq!(p.str("DeviceName").unwrap_err().code, "MissingParameter");
        let props = p.opt_object("Props").unwrap().unwrap();
        let err = props.str("EncryptionType").unwrap_err();
        assert!(err.message.contains("`Props.EncryptionType`"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let p = params(json!({"ProductId": "X", "Typo": 1, "Skey": "s"}));
        p.str("ProductId").unwrap();
        p.ignore(&["Skey"]);
        let err = p.finish().unwrap_err();
        assert_eq!(err.code, "UnknownParameter");
        assert!(err.message.contains("`Typo`"));
    }

    #[test]
    fn query_pairs_nest_like_tencent_get_requests() {
        let map = from_query_pairs(vec![
            ("ProductId".into(), "ABC".into()),
            ("DeviceNames.0".into(), "a".into()),
            ("DeviceNames.1".into(), "b".into()),
            ("Props.Type".into(), "2".into()),
            ("Limit".into(), "10".into()),
        ])
        .unwrap();
        let p = Params::new(map, true);
        assert_eq!(p.str_list("DeviceNames").unwrap(), ["a", "b"]);
        assert_eq!(p.i64("Limit").unwrap(), 10);
        assert_eq!(
            p.opt_object("Props").unwrap().unwrap().i64("Type").unwrap(),
            2
        );
        assert!(from_query_pairs(vec![("L.1".into(), "x".into())]).is_err());
    }
}
