//! The compiled rule's contract beyond single SQL cases: the input schema holds only
//! what the rule references, compiled rules are reused across batches, and errors map
//! to Tencent's codes.

use bytes::Bytes;
use eddy_core::{Message, QoS, Topic};
use eddy_rules::{CompiledRule, RuleError, RuleInput, RuleSql, rows_as_json};

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
        let messages: Vec<_> = (0..5).map(|i| msg(&format!(r#"{{"t": {i}}}"#))).collect();
        let inputs: Vec<_> = messages
            .iter()
            .map(|m| RuleInput {
                message: m,
                client_ip: None,
            })
            .collect();
        let out = rule
            .evaluate(&rule.decode(&inputs).expect("decode"))
            .expect("evaluate");
        assert_eq!(out.num_rows(), 3, "round {round}");
    }
    assert_eq!(rule.stats().rows, 15);
    let empty = rule
        .evaluate(&rule.decode(&[]).expect("decode"))
        .expect("evaluate");
    assert!(rows_as_json(&empty).is_empty());
}

#[test]
fn a_batch_of_another_schema_is_refused() {
    let a = CompiledRule::from_sql("SELECT a FROM '#'").expect("compiles");
    let b = CompiledRule::from_sql("SELECT b FROM '#'").expect("compiles");
    let m = msg("{}");
    let batch = a
        .decode(&[RuleInput {
            message: &m,
            client_ip: None,
        }])
        .expect("decode");
    assert!(matches!(b.evaluate(&batch), Err(RuleError::Internal(_))));
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
