//! A rule's actions, in Tencent's `Actions` JSON shape, and what each receives.
//!
//! `Actions` is a JSON array of objects, each keyed by its type:
//! `[{"republish":{"topic":"PID/dev2/data"}}]`. Every action runs on a destination plugin
//! (`engine/plugin-host`): `republish` and `forward` on the built-in `republish` and
//! `http-forward` plugins, configured with the action's own body; `mysql` / `postgres`
//! on the built-in `sql` plugin and `ckafka` / `tdmq` / `pulsar` on the built-in `kafka` /
//! `pulsar` plugin, each under the grants (database, brokers) of the `[[destinations]]`
//! entry the action names; `plugin` on any configured destination.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use bytes::Bytes;
use eddy_core::{QoS, Topic};
use serde_json::{Map, Value};

use crate::compile::{JSON_KIND_KEY, JSON_KIND_PAYLOAD};
use crate::rows_as_json;

/// Most actions one rule may have (Tencent: 5).
pub const MAX_ACTIONS: usize = 5;

/// One parsed action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publishes each output row to `topic` through the router, with the hub's authority,
    /// at `qos` — by default the QoS of the message the row came from, as Tencent does.
    Republish {
        topic: TopicTemplate,
        qos: Option<QoS>,
    },
    /// POSTs each output row to `api` in Tencent's forward format, signed with `token`.
    Forward { api: String, token: String },
    /// Hands the rows to the destination configured under `name` (`[[destinations]]`).
    Plugin { name: String },
    /// Inserts each row into a table (Tencent's `mysql` action; Eddy's `postgres` in the
    /// same shape) on the database the configured destination `instance` grants.
    Sql {
        /// `"postgres"` or `"mysql"`.
        dialect: &'static str,
        instance: String,
        /// The action's body (tablename, fieldpairs…), JSON text.
        body: String,
    },
    /// Sends each row to a topic on a Kafka cluster (Tencent's `ckafka` action) or a Pulsar
    /// cluster (`tdmq`, `pulsar`): the one the configured destination named by the action's
    /// `instance.id` or `instance.name` grants.
    Queue {
        /// `"kafka"` or `"pulsar"`.
        broker: &'static str,
        /// The configured destinations the action may mean: `instance.id`, `instance.name`.
        instances: Vec<String>,
        topic: String,
        /// The action's body, JSON text (optional `format`, `utc-offset-minutes`).
        body: String,
    },
}

impl Action {
    /// The built-in plugin that runs this action; `None` for a configured destination.
    pub fn plugin(&self) -> Option<&'static str> {
        match self {
            Self::Republish { .. } => Some("republish"),
            Self::Forward { .. } => Some("http-forward"),
            Self::Plugin { .. } => None,
            Self::Sql { dialect, .. } => Some(dialect),
            Self::Queue { broker, .. } => Some(broker),
        }
    }

    /// The configured destinations (`[[destinations]]` names) this action runs under, any
    /// one of which will do; empty for the actions that are their own grant.
    pub fn instances(&self) -> &[String] {
        match self {
            Self::Plugin { name } => std::slice::from_ref(name),
            Self::Sql { instance, .. } => std::slice::from_ref(instance),
            Self::Queue { instances, .. } => instances,
            Self::Republish { .. } | Self::Forward { .. } => &[],
        }
    }

    /// The plugin's configuration: the action's body, as Tencent writes it.
    pub fn config(&self) -> String {
        match self {
            Self::Republish { topic, qos } => {
                let mut body = serde_json::json!({ "topic": topic.as_str() });
                if let Some(qos) = qos {
                    body["qos"] = Value::from(*qos as u8);
                }
                body.to_string()
            }
            Self::Forward { api, token } => {
                serde_json::json!({ "api": api, "token": token }).to_string()
            }
            Self::Plugin { .. } => String::new(),
            Self::Sql { dialect, body, .. } => {
                let mut config: Value = serde_json::from_str(body).unwrap_or_default();
                if let Some(map) = config.as_object_mut() {
                    map.insert("dialect".into(), Value::from(*dialect));
                }
                config.to_string()
            }
            Self::Queue {
                broker,
                topic,
                body,
                ..
            } => {
                let mut config = serde_json::json!({ "broker": broker, "topic": topic });
                let body: Value = serde_json::from_str(body).unwrap_or_default();
                for key in ["format", "utc-offset-minutes"] {
                    if let Some(v) = body.get(key) {
                        config[key] = v.clone();
                    }
                }
                config.to_string()
            }
        }
    }

    /// What this action may reach without further configuration: its own target.
    pub fn target(&self) -> &str {
        match self {
            Self::Republish { topic, .. } => topic.as_str(),
            Self::Forward { api, .. } => api,
            Self::Plugin { name } => name,
            Self::Sql { instance, .. } => instance,
            Self::Queue { topic, .. } => topic,
        }
    }
}

/// A republish topic, maybe with `${field}` variables that each output row fills from its
/// own fields (Tencent: `house_monitor/${house}/app`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    text: String,
    /// Literal text and field names, alternating from a literal (maybe empty).
    parts: Vec<String>,
    /// The topic when there is no variable.
    fixed: Option<Topic>,
}

impl TopicTemplate {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| format!("{text:?}: \"${{\" without a closing \"}}\""))?;
            let name = &rest[start + 2..start + end];
            if name.is_empty() {
                return Err(format!("{text:?}: an empty ${{}} variable"));
            }
            parts.push(rest[..start].to_owned());
            parts.push(name.to_owned());
            rest = &rest[start + end + 1..];
        }
        parts.push(rest.to_owned());
        // What every row's topic will look like must be a valid topic name.
        let sample: String = parts
            .iter()
            .enumerate()
            .map(|(i, p)| if i % 2 == 1 { "x" } else { p.as_str() })
            .collect();
        let checked = Topic::parse(&sample).map_err(|e| format!("{text:?}: {e}"))?;
        Ok(Self {
            text: text.to_owned(),
            fixed: (parts.len() == 1).then_some(checked),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether rows fill variables (so they are needed as JSON).
    pub fn has_variables(&self) -> bool {
        self.fixed.is_none()
    }

    /// The topic for one output row: a variable takes the row's field of that name (a
    /// string as is, a number or boolean as its JSON text).
    pub fn render(&self, row: Option<&Map<String, Value>>) -> Result<Topic, String> {
        if let Some(topic) = &self.fixed {
            return Ok(topic.clone());
        }
        let mut out = String::with_capacity(self.text.len());
        for (i, part) in self.parts.iter().enumerate() {
            if i % 2 == 0 {
                out.push_str(part);
                continue;
            }
            match row.and_then(|r| r.get(part)) {
                Some(Value::String(s)) => out.push_str(s),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => out.push_str(&v.to_string()),
                _ => return Err(format!("the row has no string or number field {part:?}")),
            }
        }
        Topic::parse(&out).map_err(|e| format!("topic {out:?}: {e}"))
    }
}

/// Why an `Actions` document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No action at all (Tencent: `InvalidParameterValue.ActionNil`).
    #[error("a rule needs at least one action")]
    Nil,
    /// Anything else wrong with the document.
    #[error("{0}")]
    Invalid(String),
}

impl ActionError {
    /// The Tencent Cloud API error code.
    pub fn tencent_code(&self) -> &'static str {
        match self {
            Self::Nil => "InvalidParameterValue.ActionNil",
            Self::Invalid(_) => "InvalidParameterValue",
        }
    }
}

/// Parses a rule's `Actions` (or `ErrorActions`, with `allow_empty`) JSON text.
pub fn parse_actions(text: &str, allow_empty: bool) -> Result<Vec<Action>, ActionError> {
    if text.trim().is_empty() {
        return if allow_empty {
            Ok(Vec::new())
        } else {
            Err(ActionError::Nil)
        };
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ActionError::Invalid(format!("actions are not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(ActionError::Invalid(
            "actions must be a JSON array of objects such as {\"republish\":{\"topic\":\"…\"}}"
                .into(),
        ));
    };
    if items.is_empty() && !allow_empty {
        return Err(ActionError::Nil);
    }
    if items.len() > MAX_ACTIONS {
        return Err(ActionError::Invalid(format!(
            "a rule has at most {MAX_ACTIONS} actions, this one has {}",
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_one(i, item))
        .collect()
}

fn parse_one(i: usize, item: &Value) -> Result<Action, ActionError> {
    let invalid = |why: String| ActionError::Invalid(format!("action {}: {why}", i + 1));
    let Some(object) = item.as_object().filter(|o| o.len() == 1) else {
        return Err(invalid(
            "each action is an object with exactly one key, its type".into(),
        ));
    };
    let (kind, body) = object.iter().next().expect("one key");
    match kind.as_str() {
        "republish" => {
            let topic = body
                .get("topic")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("republish needs a \"topic\" string".into()))?;
            let topic =
                TopicTemplate::parse(topic).map_err(|e| invalid(format!("republish topic {e}")))?;
            let qos = match body.get("qos") {
                None => None,
                Some(q) => Some(
                    q.as_u64()
                        .and_then(|q| u8::try_from(q).ok())
                        .and_then(QoS::from_u8)
                        .filter(|q| *q != QoS::ExactlyOnce)
                        .ok_or_else(|| invalid("republish \"qos\" is 0 or 1".into()))?,
                ),
            };
            Ok(Action::Republish { topic, qos })
        }
        "forward" => {
            let api = body
                .get("api")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("forward needs an \"api\" URL string".into()))?;
            let host = api
                .strip_prefix("http://")
                .or_else(|| api.strip_prefix("https://"))
                .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""))
                .unwrap_or("");
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(invalid(format!(
                    "forward \"api\" must be an http:// or https:// URL with a host, not {api:?}"
                )));
            }
            let token = match body.get("token") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(t)) => t.clone(),
                Some(_) => return Err(invalid("forward \"token\" is a string".into())),
            };
            Ok(Action::Forward {
                api: api.to_owned(),
                token,
            })
        }
        "plugin" => match body.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() && name.len() <= 64 => Ok(Action::Plugin {
                name: name.to_owned(),
            }),
            _ => Err(invalid(
                "plugin needs a \"name\": one of the hub's configured [[destinations]]".into(),
            )),
        },
        dialect @ ("mysql" | "postgres") => {
            let text = |key: &str| {
                body.get(key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            };
            let instance = text("instanceid").ok_or_else(|| {
                invalid(format!(
                    "{dialect} needs an \"instanceid\": one of the hub's configured [[destinations]]"
                ))
            })?;
            text("tablename").ok_or_else(|| invalid(format!("{dialect} needs a \"tablename\"")))?;
            let pairs = body.get("fieldpairs").and_then(Value::as_array);
            let valid = pairs.is_some_and(|p| {
                !p.is_empty()
                    && p.iter().all(|pair| {
                        pair.get("field").and_then(Value::as_str).is_some()
                            && pair.get("value").and_then(Value::as_str).is_some()
                    })
            });
            if !valid {
                return Err(invalid(format!(
                    "{dialect} needs \"fieldpairs\": [{{\"field\": column, \"value\": row field}}, …]"
                )));
            }
            Ok(Action::Sql {
                dialect: if dialect == "mysql" {
                    "mysql"
                } else {
                    "postgres"
                },
                instance: instance.to_owned(),
                body: body.to_string(),
            })
        }
        kind @ ("ckafka" | "tdmq" | "pulsar") => {
            let name = |v: Option<&Value>, key: &str| {
                v.and_then(|v| v.get(key))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            let instance = body.get("instance");
            let instances: Vec<String> = [name(instance, "id"), name(instance, "name")]
                .into_iter()
                .flatten()
                .collect();
            if instances.is_empty() {
                return Err(invalid(format!(
                    "{kind} needs an \"instance\": {{\"id\" or \"name\": one of the hub's configured [[destinations]]}}"
                )));
            }
            // Tencent writes {"topic":{"id":…,"name":…}}; a bare name is taken too.
            let topic = match body.get("topic") {
                Some(Value::String(t)) if !t.is_empty() => t.clone(),
                t => name(t, "name")
                    .ok_or_else(|| invalid(format!("{kind} needs a \"topic\": {{\"name\": …}}")))?,
            };
            if topic.len() > 255 || topic.contains(char::is_whitespace) {
                return Err(invalid(format!(
                    "{kind} topic {topic:?} is not a valid topic name"
                )));
            }
            Ok(Action::Queue {
                broker: if kind == "ckafka" { "kafka" } else { "pulsar" },
                instances,
                topic,
                body: body.to_string(),
            })
        }
        other => Err(invalid(format!(
            "unknown action type \"{other}\" (known: republish, forward, plugin, mysql, postgres, ckafka, tdmq, pulsar)"
        ))),
    }
}

/// The message payload of each output row, as an action that forwards messages sends it,
/// and whether they are JSON objects.
///
/// A row is its JSON object. A rule that selects only `*` passes the payloads through
/// byte for byte when every one is a JSON object (the row is the object as the device
/// wrote it: no parse and re-serialise per row), or when none is (binary, or bare JSON
/// values: then the flag is false); a batch mixing both renders its rows as JSON objects.
pub fn row_payloads(output: &RecordBatch) -> (Vec<Bytes>, bool) {
    let schema = output.schema();
    let only_star = schema.fields().len() == 1
        && schema
            .field(0)
            .metadata()
            .get(JSON_KIND_KEY)
            .map(String::as_str)
            == Some(JSON_KIND_PAYLOAD)
        && schema.field(0).data_type() == &DataType::Binary;
    if only_star {
        let payloads = output.column(0).as_binary::<i32>();
        let objects: Vec<bool> = (0..payloads.len())
            .map(|i| is_json_object(payloads.value(i)))
            .collect();
        let all = objects.iter().all(|&o| o);
        if payloads.null_count() == 0 && (all || objects.iter().all(|&o| !o)) {
            let raw = (0..payloads.len())
                .map(|i| Bytes::copy_from_slice(payloads.value(i)))
                .collect();
            return (raw, all);
        }
    }
    let rows = rows_as_json(output)
        .into_iter()
        .map(|row| Bytes::from(Value::Object(row).to_string()))
        .collect();
    (rows, true)
}

/// Whether `bytes` is one well-formed JSON object in UTF-8 (checked without building it;
/// skipping a string does not check its UTF-8, so the whole text is checked first).
fn is_json_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && std::str::from_utf8(bytes).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The output of `SELECT *` over these payloads.
    fn star(payloads: &[&[u8]]) -> RecordBatch {
        use std::sync::Arc;
        let field = arrow::datatypes::Field::new("*", DataType::Binary, true)
            .with_metadata([(JSON_KIND_KEY.to_owned(), JSON_KIND_PAYLOAD.to_owned())].into());
        let column = arrow::array::BinaryArray::from_iter_values(payloads.iter().copied());
        RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(vec![field])),
            vec![Arc::new(column)],
        )
        .expect("batch")
    }

    #[test]
    fn select_star_passes_objects_and_non_objects_through_and_renders_a_mix() {
        // Objects: as the device wrote them (key order, spacing), flagged JSON.
        let objects: [&[u8]; 2] = [br#"{"b":1, "a":{"c":[1]}}"#, b" {}"];
        let (rows, json) = row_payloads(&star(&objects));
        assert!(json);
        assert_eq!(rows, objects.map(Bytes::from_static));
        // None an object (binary, a bare value, broken JSON): raw bytes, not JSON.
        let others: [&[u8]; 4] = [b"\x01\x02", b"[1,2]", br#"{"a":"#, b"{\"a\":\"\xff\"}"];
        let (rows, json) = row_payloads(&star(&others));
        assert!(!json);
        assert_eq!(rows, others.map(Bytes::from_static));
        // A mix: every row rendered as a JSON object.
        let (rows, json) = row_payloads(&star(&[br#"{"b":1,"a":2}"#, b"7"]));
        assert!(json);
        let rendered: Vec<Value> = rows
            .iter()
            .map(|r| serde_json::from_slice(r).expect("JSON"))
            .collect();
        assert_eq!(rendered[0], serde_json::json!({"a": 2, "b": 1}));
        assert!(rendered[1].is_object(), "{:?}", rendered[1]);
    }

    #[test]
    fn republish_parses_and_keeps_the_source_qos_by_default() {
        let a = parse_actions(r#"[{"republish":{"topic":"PID/dev/data"}}]"#, false).expect("ok");
        assert_eq!(
            a,
            [Action::Republish {
                topic: TopicTemplate::parse("PID/dev/data").expect("topic"),
                qos: None
            }]
        );
        let a = parse_actions(r#"[{"republish":{"topic":"a/b","qos":0}}]"#, false).expect("ok");
        assert!(matches!(
            a[0],
            Action::Republish {
                qos: Some(QoS::AtMostOnce),
                ..
            }
        ));
    }

    #[test]
    fn topic_variables_take_each_rows_fields() {
        let t = TopicTemplate::parse("house_monitor/${house}/app/${n}").expect("valid");
        assert!(t.has_variables());
        let row = |v: Value| v.as_object().cloned();
        let rendered = t
            .render(row(serde_json::json!({"house": "tencent", "n": 3})).as_ref())
            .expect("renders");
        assert_eq!(rendered.as_str(), "house_monitor/tencent/app/3");
        for bad in [
            serde_json::json!({"house": "a"}),
            serde_json::json!({"house": null, "n": 1}),
            serde_json::json!({"house": "a/+", "n": 1}),
        ] {
            assert!(t.render(row(bad).as_ref()).is_err());
        }
        for text in ["a/${", "a/${}", "a/${x}/#"] {
            assert!(TopicTemplate::parse(text).is_err(), "{text}");
        }
        let fixed = TopicTemplate::parse("a/b").expect("valid");
        assert_eq!(fixed.render(None).expect("fixed").as_str(), "a/b");
    }

    #[test]
    fn ckafka_and_tdmq_name_their_instance_and_topic() {
        let a = parse_actions(
            r#"[{"ckafka":{"instance":{"id":"ckafka-1","name":"main"},"topic":{"id":"t-1","name":"iot"},"region":"ap-guangzhou"}},
                {"tdmq":{"instance":{"name":"pulsar"},"topic":"persistent://public/default/iot","format":"raw"}}]"#,
            false,
        )
        .expect("ok");
        assert_eq!(a[0].plugin(), Some("kafka"));
        assert_eq!(a[0].instances(), ["ckafka-1", "main"]);
        assert_eq!(a[0].target(), "iot");
        let config: Value = serde_json::from_str(&a[0].config()).expect("json");
        assert_eq!(
            config,
            serde_json::json!({"broker": "kafka", "topic": "iot"})
        );
        assert_eq!(a[1].plugin(), Some("pulsar"));
        assert_eq!(a[1].instances(), ["pulsar"]);
        let config: Value = serde_json::from_str(&a[1].config()).expect("json");
        assert_eq!(config["format"], "raw");
        assert_eq!(config["topic"], "persistent://public/default/iot");
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(parse_actions("", false), Err(ActionError::Nil));
        assert_eq!(parse_actions("[]", false), Err(ActionError::Nil));
        assert_eq!(parse_actions("[]", true), Ok(vec![]));
        assert_eq!(parse_actions(" ", true), Ok(vec![]));
        for (text, needle) in [
            ("{", "not valid JSON"),
            ("{}", "JSON array"),
            ("[1]", "exactly one key"),
            (r#"[{"republish":{}}]"#, "needs a \"topic\""),
            (r#"[{"republish":{"topic":"a/+"}}]"#, "republish topic"),
            (r#"[{"republish":{"topic":"a","qos":2}}]"#, "qos"),
            (
                r#"[{"ckafka":{"topic":{"name":"x"}}}]"#,
                "needs an \"instance\"",
            ),
            (
                r#"[{"ckafka":{"instance":{"id":"k"}}}]"#,
                "needs a \"topic\"",
            ),
            (
                r#"[{"tdmq":{"instance":{"name":"p"},"topic":{"name":"a b"}}}]"#,
                "not a valid topic",
            ),
            (r#"[{"forward":{}}]"#, "needs an \"api\""),
            (r#"[{"forward":{"api":"ftp://x"}}]"#, "http:// or https://"),
            (r#"[{"forward":{"api":"http://x","token":1}}]"#, "token"),
            (r#"[{"teleport":{}}]"#, "unknown action type"),
        ] {
            let err = parse_actions(text, false).expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let six = format!("[{}]", [r#"{"republish":{"topic":"a"}}"#; 6].join(","));
        assert!(
            parse_actions(&six, false)
                .expect_err("6")
                .to_string()
                .contains("at most 5")
        );
    }
}
