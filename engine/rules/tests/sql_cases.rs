//! Runs every rule case under `tests/sql/`: one TOML file per case with the rule's SQL,
//! the input messages and either the expected output rows (JSON) or the expected error.
//!
//! ```toml
//! sql = "SELECT temp FROM 'ABCDE12345/+/data' WHERE temp > 30"
//! expected = '[{"temp": 31}]'            # JSON rows, compared as values
//! kinds = { id = "uuid" }                # fields checked by shape (volatile functions)
//! stats = { missing_fields = 1 }         # counters that must match
//! [[input]]
//! payload = '{"temp": 31}'               # or payload_hex = "00ff"
//! topic = "ABCDE12345/dev1/data"         # defaults shown
//! client_id = "ABCDE12345dev1"
//! client_ip = "10.0.0.1"                 # default none
//! ```
//! An error case has `error = { line = 1, column = 8, contains = "…" }` instead.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use eddy_core::{Message, QoS, Topic};
use eddy_rules::{CompiledRule, MessageBatchBuilder, RuleError, rows_as_json};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    sql: String,
    #[serde(default)]
    input: Vec<Input>,
    expected: Option<String>,
    #[serde(default)]
    kinds: BTreeMap<String, String>,
    #[serde(default)]
    stats: BTreeMap<String, u64>,
    error: Option<ExpectedError>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    payload: Option<String>,
    payload_hex: Option<String>,
    topic: Option<String>,
    client_id: Option<String>,
    client_ip: Option<String>,
    qos: Option<u8>,
    received_at_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedError {
    line: u64,
    column: u64,
    contains: String,
}

fn message(input: &Input) -> anyhow::Result<Message> {
    let payload = match (&input.payload, &input.payload_hex) {
        (Some(p), None) => Bytes::from(p.clone()),
        (None, Some(h)) => Bytes::from(hex::decode(h)?),
        _ => anyhow::bail!("an input needs exactly one of payload, payload_hex"),
    };
    Ok(Message {
        topic: Topic::parse(input.topic.as_deref().unwrap_or("ABCDE12345/dev1/data"))?,
        payload,
        qos: QoS::from_u8(input.qos.unwrap_or(1)).ok_or_else(|| anyhow::anyhow!("qos"))?,
        retain: false,
        publisher: input
            .client_id
            .clone()
            .unwrap_or_else(|| "ABCDE12345dev1".into()),
        received_at_ms: input.received_at_ms.unwrap_or(1_700_000_000_123),
        properties: None,
    })
}

fn check_kind(kind: &str, v: &Value) -> bool {
    match kind {
        "uuid" => v.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()),
        k if k.starts_with("int<") => {
            let max: i64 = k[4..].parse().unwrap_or(0);
            v.as_i64().is_some_and(|n| (0..max).contains(&n))
        }
        _ => false,
    }
}

fn run(path: &Path) -> anyhow::Result<()> {
    let case: Case = toml::from_str(&std::fs::read_to_string(path)?)?;
    let compiled = CompiledRule::from_sql(&case.sql);
    if let Some(want) = &case.error {
        match compiled {
            Err(RuleError::InvalidSql {
                line,
                column,
                reason,
            }) => {
                anyhow::ensure!(
                    (line, column) == (want.line, want.column) && reason.contains(&want.contains),
                    "wrong error: line {line}, column {column}: {reason}"
                );
                return Ok(());
            }
            other => anyhow::bail!("expected an InvalidSql error, got {other:?}"),
        }
    }
    let rule = compiled?;
    let messages = case
        .input
        .iter()
        .map(message)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut builder = MessageBatchBuilder::with_capacity(messages.len());
    for (seq, (m, i)) in (0..).zip(messages.iter().zip(&case.input)) {
        let ip = i.client_ip.as_deref().map(str::parse).transpose()?;
        builder.append(m, ip, seq);
    }
    let out = rule.run(&builder.finish())?;
    let mut rows = rows_as_json(&out);
    for row in &mut rows {
        for (field, kind) in &case.kinds {
            let v = row.remove(field).unwrap_or(Value::Null);
            anyhow::ensure!(check_kind(kind, &v), "{field} = {v} is not a {kind}");
        }
    }
    let got = Value::Array(rows.into_iter().map(Value::Object).collect());
    let want: Value = serde_json::from_str(case.expected.as_deref().unwrap_or("[]"))?;
    anyhow::ensure!(got == want, "rows differ\n got: {got}\nwant: {want}");
    let stats = rule.stats();
    for (name, want) in &case.stats {
        let got = match name.as_str() {
            "rows" => stats.rows,
            "not_json" => stats.not_json,
            "missing_fields" => stats.missing_fields,
            "type_mismatches" => stats.type_mismatches,
            other => anyhow::bail!("unknown stat {other}"),
        };
        anyhow::ensure!(got == *want, "stat {name}: got {got}, want {want}");
    }
    Ok(())
}

#[test]
fn sql_cases() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    paths.sort();
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|p| run(p).err().map(|e| format!("{}: {e:#}", p.display())))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
    assert!(paths.len() >= 25, "only {} cases", paths.len());
    Ok(())
}
