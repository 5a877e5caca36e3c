//! The compiled rule's contract beyond single SQL cases: the input schema holds only
//! what the rule references, compiled rules are reused across batches, and errors map
//! to Tencent's codes.

use bytes::Bytes;
use eddy_core::{Message, QoS, Topic};
use eddy_rules::{
    CompiledRule, MessageBatch, MessageBatchBuilder, RuleError, RuleSql, rows_as_json,
};

fn msg(payload: &str) -> Message {
    Message {
        topic: Topic::parse("ABCDE12345/dev1/data").expect("topic"),
        payload: Bytes::from(payload.to_owned()),
        qos: QoS::AtMostOnce,
        retain: false,
        publisher: "ABCDE12345dev1".into(),
        received_at_ms: 1_700_000_000_000,
        properties: None,
    }
}

fn batch(payloads: &[&str]) -> MessageBatch {
    let mut b = MessageBatchBuilder::with_capacity(payloads.len());
    for (seq, p) in (0..).zip(payloads) {
        b.append(&msg(p), None, seq);
    }
    b.finish()
}

#[test]
fn input_schema_holds_only_referenced_columns() {
    let rule = CompiledRule::from_sql(
        "SELECT temp, humidity, deviceName() AS dev FROM 'ABCDE12345/+/data' WHERE temp > 30",
    )
    .expect("compiles");
    let names: Vec<_> = rule
        .input_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        ["$json:temp", "$json:humidity", "$device_name", "$num:temp"]
    );
    let out: Vec<_> = rule
        .output_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(out, ["temp", "humidity", "dev"]);
    assert_eq!(rule.topic_filter().as_str(), "ABCDE12345/+/data");
}

#[test]
fn one_compiled_rule_serves_many_batches() {
    let rule = CompiledRule::from_sql("SELECT t FROM '#' WHERE t > 1").expect("compiles");
    for round in 0..3 {
        let payloads: Vec<_> = (0..5).map(|i| format!(r#"{{"t": {i}}}"#)).collect();
        let payloads: Vec<&str> = payloads.iter().map(String::as_str).collect();
        let out = rule.run(&batch(&payloads)).expect("run");
        assert_eq!(out.num_rows(), 3, "round {round}");
    }
    assert_eq!(rule.stats().rows, 15);
    let empty = rule.run(&batch(&[])).expect("run");
    assert!(rows_as_json(&empty).is_empty());
}

#[test]
fn a_batch_of_another_schema_is_refused() {
    let a = CompiledRule::from_sql("SELECT a FROM '#'").expect("compiles");
    let b = CompiledRule::from_sql("SELECT b FROM '#'").expect("compiles");
    let input = a.decode(&batch(&["{}"])).expect("decode");
    assert!(matches!(b.evaluate(&input), Err(RuleError::Internal(_))));
}

#[test]
fn metadata_columns_are_the_message_batch_arrays() {
    let rule = CompiledRule::from_sql(
        "SELECT topic() AS t, deviceName() AS d, qos() AS q, * FROM '#' WHERE timestamp() > 0",
    )
    .expect("compiles");
    let messages = batch(&[r#"{"a": 1}"#, "x"]);
    let input = rule.decode(&messages).expect("decode");
    let shared = |name: &str, column: &str| {
        let a = input.column_by_name(name).expect("input column");
        let b = messages
            .record_batch()
            .column_by_name(column)
            .expect("message column");
        a.to_data().ptr_eq(&b.to_data())
    };
    assert!(shared("$topic", "topic"));
    assert!(shared("$device_name", "device_name"));
    assert!(shared("$qos", "qos"));
    assert!(shared("$timestamp_ms", "timestamp_ms"));
    assert!(shared("$payload", "payload"));
    let rows = rows_as_json(&rule.evaluate(&input).expect("evaluate"));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["t"], "ABCDE12345/dev1/data");
    assert_eq!(rows[0]["d"], "dev1");
    assert_eq!(rows[0]["q"], 0);
    assert_eq!(rows[0]["a"], 1);
}

#[test]
fn invalid_sql_maps_to_tencent_code() {
    let err = RuleSql::parse("SELECT FROM").expect_err("invalid");
    assert_eq!(err.tencent_code(), "InvalidParameterValue.InvalidSQL");
    assert!(RuleSql::parse("SELECT a FROM 'x/y'; SELECT b FROM 'x/y'").is_err());
    assert!(RuleSql::parse("DELETE FROM 'x/y'").is_err());
}

#[test]
fn parse_keeps_sql_and_filter() {
    let sql = "SELECT * FROM 'ABCDE12345/+/event'";
    let parsed = RuleSql::parse(sql).expect("parses");
    assert_eq!(parsed.sql(), sql);
    assert_eq!(parsed.topic_filter().as_str(), "ABCDE12345/+/event");
}
