//! No payload can make a rule fail or panic: deep nesting, huge numbers, invalid UTF-8,
//! truncated JSON and binary noise all become NULLs (and counters), never errors.

use bytes::Bytes;
use eddy_core::{Message, QoS, Topic};
use eddy_rules::{CompiledRule, MessageBatchBuilder, rows_as_json};

fn message(payload: Vec<u8>) -> Message {
    Message {
        topic: Topic::parse("ABCDE12345/dev1/data").expect("topic"),
        payload: Bytes::from(payload),
        qos: QoS::AtLeastOnce,
        retain: false,
        publisher: "ABCDE12345dev1".into(),
        received_at_ms: 1_700_000_000_000,
        properties: None,
    }
}

fn hostile_payloads() -> Vec<Vec<u8>> {
    let depth = 100_000;
    let mut payloads: Vec<Vec<u8>> = vec![
        format!("{{\"temp\":{}{}}}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes(),
        format!("{{\"x\":{}", "[{\"k\":".repeat(depth)).into_bytes(),
        "[".repeat(depth).into_bytes(),
        br#"{"temp": 1e999, "name": 1e999}"#.to_vec(),
        format!(
            "{{\"temp\": {}, \"a\": {{\"b\": {{\"c\": -{}}}}}}}",
            "9".repeat(400),
            "1".repeat(400)
        )
        .into_bytes(),
        br#"{"temp": -0, "name": 123456789012345678901234567890}"#.to_vec(),
        b"{\"temp\": \"\xff\xfe\", \"name\": \"\xc3\x28\"}".to_vec(),
        b"{\"junk\": \"\xff\", \"temp\": 40, \"name\": \"x\"}".to_vec(),
        br#"{"temp": 40, "name": "x"#.to_vec(),
        br#"{"temp": 4"#.to_vec(),
        br#"{"temp": "\ud800", "name": "\u0000"}"#.to_vec(),
        b"\xef\xbb\xbf{\"temp\": 40}".to_vec(),
        b"\x00\x01\x02{".to_vec(),
        Vec::new(),
        format!("{{\"name\": \"{}\", \"temp\": 50}}", "x".repeat(1 << 20)).into_bytes(),
    ];
    // Deterministic binary noise, some of it starting like JSON.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..200 {
        let len = (i * 7) % 300;
        let mut p: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        if i % 2 == 0 {
            p.splice(0..0, br#"{"temp": 1, "a": {"b": "#.iter().copied());
        }
        payloads.push(p);
    }
    payloads
}

#[test]
fn no_payload_makes_a_rule_fail_or_panic() {
    let rules = [
        "SELECT *, temp, a.b.c, name FROM '#' WHERE temp > 1 OR upper(name) = 'X'",
        "SELECT temp, humidity, deviceName() AS dev FROM 'ABCDE12345/+/data' WHERE temp > 30",
        "SELECT concat(name, '-', temp) AS s, a.b[0].c AS c FROM '#' WHERE a.b.c IS NULL",
        "SELECT temp FROM '#' WHERE online AND NOT broken",
    ];
    let payloads = hostile_payloads();
    let mut builder = MessageBatchBuilder::with_capacity(payloads.len());
    for (seq, p) in (0..).zip(&payloads) {
        builder.append(&message(p.clone()), None, seq);
    }
    let batch = builder.finish();
    for sql in rules {
        let rule = CompiledRule::from_sql(sql).expect("compiles");
        let out = rule.run(&batch).expect("a hostile payload is not an error");
        let rows = rows_as_json(&out);
        assert_eq!(rows.len(), out.num_rows());
        let stats = rule.stats();
        assert_eq!(stats.rows, payloads.len() as u64);
        assert!(stats.not_json > 0, "{sql}: {stats:?}");
    }
}

#[test]
fn huge_numbers_and_bad_utf8_become_nulls() {
    let rule = CompiledRule::from_sql(
        "SELECT temp, upper(name) AS n FROM '#' WHERE temp > 30 OR name = 'a'",
    )
    .expect("compiles");
    let mut builder = MessageBatchBuilder::with_capacity(3);
    for (seq, p) in (0..).zip([
        br#"{"temp": 1e999, "name": "a"}"#.to_vec(),
        b"{\"temp\": 31, \"name\": \"\xc3\x28\"}".to_vec(),
        br#"{"temp": 31, "name": "caf\u00e9"}"#.to_vec(),
    ]) {
        builder.append(&message(p), None, seq);
    }
    let rows = rows_as_json(&rule.run(&builder.finish()).expect("run"));
    assert_eq!(rows.len(), 3);
    // 1e999 is no number to compare, but is selected as the device wrote it.
    assert_eq!(rows[0]["temp"], "1e999");
    assert_eq!(rows[0]["n"], "A");
    assert_eq!(rows[1]["n"], serde_json::Value::Null);
    assert_eq!(rows[2]["n"], "CAFÉ");
    assert_eq!(rule.stats().type_mismatches, 2);
}
