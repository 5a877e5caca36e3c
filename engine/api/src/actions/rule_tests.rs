//! The rule actions against a real (SQLite) store, with a small engine hook that records
//! what the API asks of it.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eddy_store::TopicRuleRecord;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::actions::dispatch;
use crate::error::ApiError;
use crate::params::Params;
use crate::rules::{RuleEngineHook, SampleMessage};

/// Refuses SQL containing `BAD` as the real engine would, with a position.
#[derive(Debug, Default)]
struct Hook {
    reloads: Mutex<Vec<Vec<(String, bool)>>>,
    tested: Mutex<Vec<SampleMessage>>,
}

impl RuleEngineHook for Hook {
    fn check(&self, sql: &str, actions: &str, _error_actions: &str) -> Result<(), ApiError> {
        if let Some(at) = sql.find("BAD") {
            return Err(ApiError::new(
                "InvalidParameterValue.InvalidSQL",
                format!("line 1, column {}: unexpected BAD", at + 1),
            ));
        }
        if actions.contains("\"nosuch\"") {
            return Err(ApiError::new(
                "InvalidParameterValue",
                "unsupported action type nosuch",
            ));
        }
        Ok(())
    }

    fn reload(&self, rules: Vec<TopicRuleRecord>) {
        let names = rules.into_iter().map(|r| (r.name, r.disabled)).collect();
        self.reloads.lock().unwrap().push(names);
    }

    fn stats(&self, rule_name: &str) -> Option<Value> {
        Some(json!({ "Rule": rule_name, "Matched": 7 }))
    }

    fn test(
        &self,
        sql: &str,
        _actions: &str,
        messages: &[SampleMessage],
    ) -> Result<Value, ApiError> {
        self.tested.lock().unwrap().extend_from_slice(messages);
        Ok(json!({ "Sql": sql, "Outputs": messages.len() }))
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    state: ApiState,
    hook: Arc<Hook>,
}

async fn fixture(with_hook: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = eddy_store::SqliteStore::open(&dir.path().join("eddy.db"))
        .await
        .unwrap();
    let hook = Arc::new(Hook::default());
    let mut state = ApiState::new(Arc::new(store)).with_max_rules(3);
    if with_hook {
        state = state.with_rules(hook.clone());
    }
    Fixture {
        _dir: dir,
        state,
        hook,
    }
}

async fn call(f: &Fixture, action: &str, params: Value) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(map) = params else {
        panic!("params must be an object")
    };
    dispatch(&f.state, action, &Params::new(map, false)).await
}

fn code(result: Result<Map<String, Value>, ApiError>) -> String {
    match result {
        Ok(ok) => panic!("expected an error, got {ok:?}"),
        Err(err) => err.code,
    }
}

fn payload(sql: &str) -> Value {
    json!({
        "Sql": STANDARD.encode(sql),
        "Actions": r#"[{"republish":{"topic":"p/d/x"}}]"#,
        "Description": "d",
    })
}

#[tokio::test]
async fn writes_check_store_then_reload() {
    let f = fixture(true).await;
    let create =
        |name: &str, sql: &str| json!({ "RuleName": name, "TopicRulePayload": payload(sql) });
    call(&f, "CreateTopicRule", create("r1", "SELECT * FROM 'a/b'"))
        .await
        .unwrap();
    let err = call(&f, "CreateTopicRule", create("r2", "SELECT BAD FROM 'a/b'"))
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidParameterValue.InvalidSQL");
    assert!(err.message.contains("line 1, column 8"), "{err}");
    let mut nosuch = create("r2", "SELECT 1");
    nosuch["TopicRulePayload"]["Actions"] = json!(r#"[{"nosuch":{}}]"#);
    assert_eq!(
        code(call(&f, "CreateTopicRule", nosuch).await),
        "InvalidParameterValue"
    );
    // Refused rules were neither stored nor reloaded.
    assert_eq!(
        code(call(&f, "DescribeTopicRule", json!({ "RuleName": "r2" })).await),
        "ResourceNotFound.TopicRuleNotExist"
    );
    assert_eq!(f.hook.reloads.lock().unwrap().len(), 1);

    call(&f, "DisableTopicRule", json!({ "RuleName": "r1" }))
        .await
        .unwrap();
    let mut replaced = create("r1", "SELECT x FROM 'c/d'");
    replaced["TopicRulePayload"]["ErrorActions"] = json!(r#"[{"forward":{"api":"http://e"}}]"#);
    call(&f, "ReplaceTopicRule", replaced).await.unwrap();
    assert_eq!(
        code(call(&f, "ReplaceTopicRule", create("r1", "SELECT BAD")).await),
        "InvalidParameterValue.InvalidSQL"
    );
    call(&f, "EnableTopicRule", json!({ "RuleName": "r1" }))
        .await
        .unwrap();
    call(&f, "CreateTopicRule", create("r3", "SELECT 1 FROM 'e'"))
        .await
        .unwrap();
    call(&f, "DeleteTopicRule", json!({ "RuleName": "r3" }))
        .await
        .unwrap();
    let reloads = f.hook.reloads.lock().unwrap().clone();
    let r1 = |disabled| ("r1".to_owned(), disabled);
    assert_eq!(
        reloads,
        [
            vec![r1(false)],
            vec![r1(true)],
            vec![r1(true)],
            vec![r1(false)],
            vec![r1(false), ("r3".to_owned(), false)],
            vec![r1(false)],
        ]
    );

    let described = call(&f, "DescribeTopicRule", json!({ "RuleName": "r1" }))
        .await
        .unwrap();
    let rule = &described["Rule"];
    assert_eq!(rule["Sql"], STANDARD.encode("SELECT x FROM 'c/d'"));
    assert_eq!(rule["TopicPattern"], "c/d");
    assert_eq!(rule["ErrorActions"], r#"[{"forward":{"api":"http://e"}}]"#);
    assert_eq!(rule["RuleDisabled"], false);
    assert_eq!(rule["Stats"], json!({ "Rule": "r1", "Matched": 7 }));

    // Stats in the listing only on request: Tencent's SDKs warn about unknown fields.
    let listed = call(
        &f,
        "ListTopicRules",
        json!({ "PageNum": 1, "PageSize": 10 }),
    )
    .await
    .unwrap();
    assert_eq!(listed["TotalCnt"], 1);
    assert!(listed["Rules"][0].get("Stats").is_none(), "{listed:?}");
    let listed = call(&f, "ListTopicRules", json!({ "WithStats": true }))
        .await
        .unwrap();
    assert_eq!(listed["Rules"][0]["Stats"]["Matched"], 7);
}

#[tokio::test]
async fn without_an_engine_rules_are_stored_and_test_fails_clearly() {
    let f = fixture(false).await;
    // Nothing compiles the SQL: only the registry's checks apply.
    call(
        &f,
        "CreateTopicRule",
        json!({ "RuleName": "r", "TopicRulePayload": payload("SELECT BAD") }),
    )
    .await
    .unwrap();
    let described = call(&f, "DescribeTopicRule", json!({ "RuleName": "r" }))
        .await
        .unwrap();
    assert!(described["Rule"].get("Stats").is_none());
    let err = call(
        &f,
        "TestTopicRule",
        json!({
            "Sql": STANDARD.encode("SELECT * FROM 'a'"),
            "Messages": [{ "Topic": "a", "Payload": "{}" }],
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "FailedOperation");
    assert!(err.message.contains("rule engine"), "{err}");
}

#[tokio::test]
async fn test_topic_rule_reads_messages() {
    let f = fixture(true).await;
    let out = call(
        &f,
        "TestTopicRule",
        json!({
            "Sql": STANDARD.encode("SELECT * FROM 'a/+'"),
            "Messages": [
                { "Topic": "a/1", "Payload": "{\"t\":1}", "ClientId": "c1", "ClientIp": "10.0.0.1", "Qos": 1 },
                { "Topic": "a/2", "Payload": STANDARD.encode([0u8, 255]), "PayloadEncoding": "base64",
                  "ProductId": "PRODUCT001", "DeviceName": "dev" },
            ],
        }),
    )
    .await
    .unwrap();
    assert_eq!(out["Outputs"], 2);
    assert_eq!(out["Sql"], "SELECT * FROM 'a/+'");
    let tested = f.hook.tested.lock().unwrap().clone();
    assert_eq!(
        tested,
        [
            SampleMessage {
                topic: "a/1".into(),
                payload: bytes::Bytes::from_static(b"{\"t\":1}"),
                client_id: "c1".into(),
                client_ip: Some("10.0.0.1".into()),
                qos: 1,
            },
            SampleMessage {
                topic: "a/2".into(),
                payload: bytes::Bytes::from_static(&[0, 255]),
                client_id: "PRODUCT001dev".into(),
                client_ip: None,
                qos: 0,
            },
        ]
    );
    let sql = STANDARD.encode("SELECT 1");
    for (message, field) in [
        (
            json!({ "Topic": "a", "Payload": "x", "Qos": 3 }),
            "Messages.0.Qos",
        ),
        (
            json!({ "Topic": "a", "Payload": "x", "ClientIp": "nope" }),
            "Messages.0.ClientIp",
        ),
        (
            json!({ "Topic": "a", "Payload": "%%", "PayloadEncoding": "base64" }),
            "Messages.0.Payload",
        ),
        (
            json!({ "Topic": "a", "Payload": "x", "PayloadEncoding": "hex" }),
            "Messages.0.PayloadEncoding",
        ),
        (
            json!({ "Topic": "a", "Payload": "x", "ClientId": "c", "ProductId": "P" }),
            "Messages.0.ClientId",
        ),
    ] {
        let err = call(
            &f,
            "TestTopicRule",
            json!({ "Sql": sql, "Messages": [message] }),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "InvalidParameterValue", "{err}");
        assert!(err.message.contains(field), "{field}: {err}");
    }
    let err = call(
        &f,
        "TestTopicRule",
        json!({ "Sql": sql, "Messages": [{ "Topic": "a", "Payload": "", "Typo": 1 }] }),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "UnknownParameter");
    assert!(err.message.contains("Messages.0.Typo"), "{err}");
    assert_eq!(
        code(call(&f, "TestTopicRule", json!({ "Sql": sql, "Messages": [] })).await),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            call(
                &f,
                "TestTopicRule",
                json!({ "Sql": "!!", "Messages": [{ "Topic": "a", "Payload": "" }] })
            )
            .await
        ),
        "InvalidParameterValue.InvalidSQL"
    );
}

#[tokio::test]
async fn paging_and_parameter_errors() {
    let f = fixture(true).await;
    for name in ["a", "b", "c"] {
        call(
            &f,
            "CreateTopicRule",
            json!({ "RuleName": name, "TopicRulePayload": payload("SELECT 1 FROM 't'") }),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        code(
            call(
                &f,
                "CreateTopicRule",
                json!({ "RuleName": "d", "TopicRulePayload": payload("SELECT 1") })
            )
            .await
        ),
        "InvalidParameterValue.RuleNumberBeyondLimit"
    );
    let names = |m: &Map<String, Value>| -> Vec<String> {
        m["Rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["RuleName"].as_str().unwrap().to_owned())
            .collect()
    };
    let page2 = call(&f, "ListTopicRules", json!({ "PageNum": 2, "PageSize": 2 }))
        .await
        .unwrap();
    assert_eq!(page2["TotalCnt"], 3);
    assert_eq!(names(&page2).len(), 1);
    let offset = call(&f, "ListTopicRules", json!({ "Offset": 1, "Limit": 1 }))
        .await
        .unwrap();
    assert_eq!(names(&offset).len(), 1);
    for bad in [
        json!({ "PageNum": 0 }),
        json!({ "PageSize": 501 }),
        json!({ "PageNum": 1, "Offset": 0 }),
        json!({ "Limit": 0 }),
    ] {
        assert_eq!(
            code(call(&f, "ListTopicRules", bad.clone()).await),
            "InvalidParameterValue",
            "{bad}"
        );
    }
    assert_eq!(
        code(call(&f, "CreateTopicRule", json!({ "RuleName": "x" })).await),
        "MissingParameter"
    );
    assert_eq!(
        code(
            call(
                &f,
                "CreateTopicRule",
                json!({ "RuleName": "bad name", "TopicRulePayload": payload("SELECT 1") })
            )
            .await
        ),
        "InvalidParameterValue"
    );
    let mut typo = payload("SELECT 1");
    typo["Sqll"] = json!("x");
    assert_eq!(
        code(
            call(
                &f,
                "ReplaceTopicRule",
                json!({ "RuleName": "a", "TopicRulePayload": typo })
            )
            .await
        ),
        "UnknownParameter"
    );
    let mut no_actions = payload("SELECT 1");
    no_actions["Actions"] = json!("[]");
    assert_eq!(
        code(
            call(
                &f,
                "ReplaceTopicRule",
                json!({ "RuleName": "a", "TopicRulePayload": no_actions })
            )
            .await
        ),
        "InvalidParameterValue.ActionNil"
    );
    let mut not_bool = payload("SELECT 1");
    not_bool["RuleDisabled"] = json!("yes");
    assert_eq!(
        code(
            call(
                &f,
                "ReplaceTopicRule",
                json!({ "RuleName": "a", "TopicRulePayload": not_bool })
            )
            .await
        ),
        "InvalidParameterValue"
    );
}
