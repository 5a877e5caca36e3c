//! The `postgres` and `mysql` destinations: Tencent's MySQL action shape
//! (`{"mysql":{"instanceid":…,"tablename":…,"fieldpairs":[{"field":…,"value":…}]}}`; Eddy
//! adds `postgres` in the same shape). Each row becomes one row of `tablename`: column
//! `field` takes the row's field named by `value` (`temp` or `${temp}`; missing → NULL;
//! objects and arrays as JSON text). The whole batch is one `sql.execute` call — one
//! parameterised INSERT, every row in one transaction — on the database the destination
//! `instanceid` names in the hub's config (`[[destinations]]`, grants `sql-url` and
//! `sql-tables`).
//!
//! A row that is not a JSON object is rejected alone; a database error on the batch
//! (constraint, type) makes it permanent (error action, dead letters); an unreachable
//! database makes the host retry.

use eddy_plugin_sdk::sql::{self, Value as SqlValue};
use eddy_plugin_sdk::{Batch, DeliveryError, Destination, RejectedRow};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct FieldPair {
    field: String,
    value: String,
}

#[derive(Deserialize)]
struct Config {
    /// "postgres" or "mysql" (set by the hub from the action type).
    dialect: String,
    tablename: String,
    fieldpairs: Vec<FieldPair>,
}

struct Insert {
    statement: String,
    /// The row field each column takes.
    sources: Vec<String>,
}

fn identifier(text: &str, dotted: bool) -> bool {
    !text.is_empty()
        && text.len() <= 64 * 2
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || (dotted && b == b'.'))
}

impl Destination for Insert {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("sql configuration: {e}"))?;
        let (quote, placeholder): (char, fn(usize) -> String) = match config.dialect.as_str() {
            "postgres" => ('"', |i| format!("${i}")),
            "mysql" => ('`', |_| "?".to_owned()),
            other => return Err(format!("unknown SQL dialect {other:?}")),
        };
        if !identifier(&config.tablename, true) {
            return Err(format!(
                "tablename {:?}: letters, digits, _ and .",
                config.tablename
            ));
        }
        if config.fieldpairs.is_empty() {
            return Err("fieldpairs: at least one {\"field\",\"value\"}".into());
        }
        let quoted = |name: &str| {
            name.split('.')
                .map(|part| format!("{quote}{part}{quote}"))
                .collect::<Vec<_>>()
                .join(".")
        };
        let mut columns = Vec::new();
        let mut sources = Vec::new();
        for pair in &config.fieldpairs {
            if !identifier(&pair.field, false) {
                return Err(format!(
                    "fieldpairs field {:?}: letters, digits and _",
                    pair.field
                ));
            }
            let source = pair.value.trim();
            let source = source
                .strip_prefix("${")
                .and_then(|s| s.strip_suffix('}'))
                .unwrap_or(source);
            if source.is_empty() {
                return Err(format!("fieldpairs value for {:?} is empty", pair.field));
            }
            columns.push(quoted(&pair.field));
            sources.push(source.to_owned());
        }
        let values: Vec<String> = (1..=columns.len()).map(placeholder).collect();
        Ok(Self {
            statement: format!(
                "INSERT INTO {} ({}) VALUES ({})",
                quoted(&config.tablename),
                columns.join(", "),
                values.join(", ")
            ),
            sources,
        })
    }

    fn deliver(&mut self, batch: &Batch) -> Result<(), DeliveryError> {
        let mut rows = Vec::new();
        let mut rejected = Vec::new();
        for (index, payload) in batch.rows().into_iter().enumerate() {
            match serde_json::from_slice::<serde_json::Map<String, Value>>(&payload) {
                Ok(row) => rows.push(self.sources.iter().map(|s| value(row.get(s))).collect()),
                Err(_) => rejected.push(RejectedRow {
                    index: index as u32,
                    reason: "the row is not a JSON object".into(),
                }),
            }
        }
        if !rows.is_empty() {
            sql::execute(&self.statement, &rows).map_err(DeliveryError::from)?;
        }
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(DeliveryError::Rejected(rejected))
        }
    }
}

fn value(field: Option<&Value>) -> SqlValue {
    match field {
        None | Some(Value::Null) => SqlValue::Null,
        Some(Value::Bool(b)) => SqlValue::Boolean(*b),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Some(Value::String(s)) => SqlValue::Text(s.clone()),
        Some(other) => SqlValue::Text(other.to_string()),
    }
}

eddy_plugin_sdk::export_destination!(Insert);
