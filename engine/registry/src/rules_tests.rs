//! Rule validation and the rule lifecycle over a real (SQLite) store.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;

const ONE_ACTION: &str = r#"[{"republish":{"topic":"p/d/x"}}]"#;

fn b64(sql: &str) -> String {
    STANDARD.encode(sql)
}

fn content(sql: &str) -> TopicRuleContent {
    TopicRuleContent::parse(&b64(sql), Some(ONE_ACTION), None, String::new()).unwrap()
}

fn code(result: Result<impl std::fmt::Debug>) -> &'static str {
    result.unwrap_err().code()
}

#[test]
fn rule_names() {
    for good in ["a", "rule_1", "ABC_def_123", &"x".repeat(32)] {
        assert_eq!(RuleName::parse(good).unwrap().as_str(), good);
    }
    for bad in [
        "",
        "has space",
        "dash-ed",
        "dot.ted",
        "温度",
        &"x".repeat(33),
    ] {
        let err = RuleName::parse(bad).unwrap_err();
        assert_eq!(err.code(), "InvalidParameterValue", "{bad:?}");
        assert!(err.to_string().starts_with("RuleName:"), "{err}");
    }
}

#[test]
fn sql_must_be_base64_utf8_and_not_empty() {
    assert_eq!(
        decode_sql(&b64("SELECT * FROM 'a/b'")).unwrap(),
        "SELECT * FROM 'a/b'"
    );
    for bad in [
        "not base64!",
        "U0VMRUNU*",
        "",
        &b64("   "),
        &STANDARD.encode([0xff, 0xfe]),
    ] {
        let err = decode_sql(bad).unwrap_err();
        assert_eq!(err.code(), "InvalidParameterValue.InvalidSQL", "{bad:?}");
    }
}

#[test]
fn actions_are_checked() {
    let sql = b64("SELECT * FROM 'a/b'");
    let parse = |actions: Option<&str>, errors: Option<&str>| {
        TopicRuleContent::parse(&sql, actions, errors, String::new())
    };
    assert_eq!(code(parse(None, None)), "InvalidParameterValue.ActionNil");
    assert_eq!(
        code(parse(Some("  "), None)),
        "InvalidParameterValue.ActionNil"
    );
    assert_eq!(
        code(parse(Some("[]"), None)),
        "InvalidParameterValue.ActionNil"
    );
    assert_eq!(code(parse(Some("{"), None)), "InvalidParameterValue");
    assert_eq!(
        code(parse(Some(r#"{"republish":{}}"#), None)),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(parse(Some(r#"[{"a":1,"b":2}]"#), None)),
        "InvalidParameterValue"
    );
    assert_eq!(code(parse(Some("[1]"), None)), "InvalidParameterValue");
    let five = format!("[{}]", [r#"{"republish":{"topic":"t"}}"#; 5].join(","));
    let six = format!("[{}]", [r#"{"republish":{"topic":"t"}}"#; 6].join(","));
    assert!(parse(Some(&five), None).is_ok());
    let err = parse(Some(&six), None).unwrap_err();
    assert!(err.to_string().contains("at most 5"), "{err}");
    assert_eq!(
        code(parse(Some(ONE_ACTION), Some(&six))),
        "InvalidParameterValue"
    );
    // Empty error actions, in any form, are stored as "".
    for none in [None, Some(""), Some("[]"), Some(" [ ] ")] {
        assert_eq!(parse(Some(ONE_ACTION), none).unwrap().error_actions, "");
    }
    let with_errors = parse(Some(ONE_ACTION), Some(ONE_ACTION)).unwrap();
    assert_eq!(with_errors.error_actions, ONE_ACTION);
    assert_eq!(with_errors.sql, "SELECT * FROM 'a/b'");
}

#[test]
fn topic_patterns() {
    for (sql, want) in [
        ("SELECT * FROM 'p/d/event'", "p/d/event"),
        ("select a from  'p/+/x' where a > 1", "p/+/x"),
        ("SELECT 'from' AS x, y FROM 'a/#'", "a/#"),
        ("SELECT fromage FROM 'it''s/x'", "it's/x"),
        ("SELECT \"FROM\" FROM 'q'", "q"),
        ("SELECT 1", ""),
        ("SELECT * FROM 'unterminated", ""),
    ] {
        assert_eq!(topic_pattern(sql), want, "{sql}");
    }
}

async fn registry(max_rules: u64) -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let store = eddy_store::SqliteStore::open(&dir.path().join("eddy.db"))
        .await
        .unwrap();
    (
        dir,
        Registry::new(Arc::new(store)).with_max_rules(max_rules),
    )
}

#[tokio::test]
async fn lifecycle_and_limits() {
    let (_dir, registry) = registry(2).await;
    let a = RuleName::parse("a").unwrap();
    let created = registry
        .create_topic_rule(&a, content("SELECT * FROM 'x/y'"), true)
        .await
        .unwrap();
    assert!(created.disabled);
    assert_eq!(
        code(
            registry
                .create_topic_rule(&a, content("SELECT 1"), false)
                .await
        ),
        "InvalidParameterValue.TopicRuleAlreadyExist"
    );
    let b = RuleName::parse("b").unwrap();
    registry
        .create_topic_rule(&b, content("SELECT 1"), false)
        .await
        .unwrap();
    let c = RuleName::parse("c").unwrap();
    assert_eq!(
        code(
            registry
                .create_topic_rule(&c, content("SELECT 1"), false)
                .await
        ),
        "InvalidParameterValue.RuleNumberBeyondLimit"
    );

    assert_eq!(
        code(registry.set_topic_rule_enabled("a", false).await),
        "FailedOperation.RuleAlreadyDisabled"
    );
    registry.set_topic_rule_enabled("a", true).await.unwrap();
    assert_eq!(
        code(registry.set_topic_rule_enabled("a", true).await),
        "FailedOperation.RuleAlreadyEnabled"
    );
    assert_eq!(
        code(registry.set_topic_rule_enabled("zz", true).await),
        "ResourceNotFound.TopicRuleNotExist"
    );

    registry
        .replace_topic_rule("a", content("SELECT b FROM 'n/m'"), Some(true))
        .await
        .unwrap();
    let a_now = registry.topic_rule("a").await.unwrap();
    assert_eq!(
        (a_now.sql.as_str(), a_now.disabled),
        ("SELECT b FROM 'n/m'", true)
    );
    assert_eq!(a_now.created_at, created.created_at);
    assert_eq!(
        code(
            registry
                .replace_topic_rule("zz", content("SELECT 1"), None)
                .await
        ),
        "ResourceNotFound.TopicRuleNotExist"
    );

    registry.delete_topic_rule("b").await.unwrap();
    assert_eq!(
        code(registry.delete_topic_rule("b").await),
        "ResourceNotFound.TopicRuleNotExist"
    );
    assert_eq!(
        code(registry.topic_rule("b").await),
        "ResourceNotFound.TopicRuleNotExist"
    );
    // Room again under the limit.
    registry
        .create_topic_rule(&c, content("SELECT 1"), false)
        .await
        .unwrap();
    let all = registry.all_topic_rules().await.unwrap();
    assert_eq!(all.len(), 2);
}
