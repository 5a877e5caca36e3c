//! The `republish` destination: publishes each row back into the hub's broker.
//!
//! Configuration — Tencent's action body: `{"topic":"PID/dev2/data","qos":1}`. The topic may
//! hold `${field}` variables that each row fills from its own fields (a string as is, a
//! number or boolean as its JSON text), as Tencent documents (`house/${house}/app`). `qos`
//! is optional: by default a row keeps the QoS of the message it came from.
//!
//! A row whose variables cannot be filled is rejected (the rule's error action gets it);
//! the others are published, in order within each topic. The rows themselves never enter
//! the plugin's memory unless the topic has variables to fill from them
//! (`mqtt.publish-rows`).

use std::collections::HashMap;
use std::fmt;

use eddy_plugin_sdk::{Batch, DeliveryError, Destination, RejectedRow, mqtt};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    topic: String,
    #[serde(default)]
    qos: Option<u8>,
}

struct Republish {
    /// Literal text and field names, alternating from a literal (maybe empty).
    parts: Vec<String>,
    qos: Option<u8>,
}

impl Destination for Republish {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("republish configuration: {e}"))?;
        if config.qos.is_some_and(|q| q > 1) {
            return Err("republish \"qos\" is 0 or 1".into());
        }
        Ok(Self {
            parts: split_template(&config.topic)?,
            qos: config.qos,
        })
    }

    fn deliver(&mut self, batch: &Batch) -> Result<(), DeliveryError> {
        if let [topic] = self.parts.as_slice() {
            // One fixed topic: the host publishes the rows as they are, none enters here.
            return mqtt::publish_rows(batch, topic, self.qos, None).map_err(DeliveryError::from);
        }
        // Variables: read the rows, fill each one's topic, then publish each topic's rows
        // in one call (rows keep their order within a topic).
        let payloads = batch.payloads();
        let json = batch.meta_columns().json;
        let mut topics: Vec<(String, Vec<u32>)> = Vec::new();
        let mut index_of: HashMap<String, usize> = HashMap::new();
        let mut rejected = Vec::new();
        for (index, payload) in payloads.iter().enumerate() {
            let index = index as u32;
            match self.topic(payload, json.get(index as usize).copied().unwrap_or(false)) {
                Ok(topic) => match index_of.get(&topic) {
                    Some(&at) => topics[at].1.push(index),
                    None => {
                        index_of.insert(topic.clone(), topics.len());
                        topics.push((topic, vec![index]));
                    }
                },
                Err(reason) => rejected.push(RejectedRow { index, reason }),
            }
        }
        for (topic, rows) in &topics {
            mqtt::publish_rows(batch, topic, self.qos, Some(rows)).map_err(DeliveryError::from)?;
        }
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(DeliveryError::Rejected(rejected))
        }
    }
}

impl Republish {
    fn topic(&self, payload: &[u8], json: bool) -> Result<String, String> {
        if !json {
            return Err("the topic has variables but the row is not a JSON object".into());
        }
        let values = fields(payload, &self.parts).map_err(|e| format!("row is not JSON: {e}"))?;
        let mut out = String::new();
        for (i, part) in self.parts.iter().enumerate() {
            if i % 2 == 0 {
                out.push_str(part);
                continue;
            }
            match &values[i / 2] {
                Some(value) => out.push_str(value),
                None => return Err(format!("the row has no string or number field {part:?}")),
            }
        }
        Ok(out)
    }
}

/// The values of the template's fields (the odd `parts`: `[literal, name, literal, …]`) in
/// a JSON object text, read in one pass without
/// building the object: a string as is, a number or boolean as its JSON text, none for a
/// field that is missing or of another type (the last occurrence of a repeated field
/// counts, as in a parsed object).
fn fields(payload: &[u8], parts: &[String]) -> Result<Vec<Option<String>>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let found = serde::Deserializer::deserialize_map(&mut de, Picker(parts))?;
    de.end()?;
    Ok(found)
}

/// Visits an object, keeping only the wanted fields' values.
struct Picker<'n>(&'n [String]);

impl<'de> Visitor<'de> for Picker<'_> {
    type Value = Vec<Option<String>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = vec![None; self.0.len() / 2];
        while let Some(wanted) = map.next_key_seed(Key(self.0))? {
            match wanted {
                Some(i) => {
                    // A name the template uses twice fills both places.
                    let value = map.next_value::<Scalar>()?.0;
                    let name = &self.0[2 * i + 1];
                    for (j, other) in self.0.iter().skip(1).step_by(2).enumerate() {
                        if other == name {
                            found[j].clone_from(&value);
                        }
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// A key: its index among the wanted names, if wanted (compared without allocating).
struct Key<'n>(&'n [String]);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self
            .0
            .iter()
            .skip(1)
            .step_by(2)
            .position(|name| name == key))
    }
}

/// A wanted field's value as topic text: strings, numbers and booleans; none otherwise.
struct Scalar(Option<String>);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_owned())))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        // As serde_json writes the number (`1.5`, `1e20`).
        Ok(Scalar(
            serde_json::Number::from_f64(v).map(|n| n.to_string()),
        ))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar(None))
    }
}

/// `a/${x}/b` → `["a/", "x", "/b"]`.
fn split_template(text: &str) -> Result<Vec<String>, String> {
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
    Ok(parts)
}

eddy_plugin_sdk::export_destination!(Republish);
