//! Topic rules over the Cloud API: every action, every error code, paging, and rules
//! surviving kill -9. The hub under test runs without the rule engine wired in, so SQL is
//! only checked for base64 here; `invalid_sql_names_line_and_column` needs the engine.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::support::{Hub, error_code, error_of, workdir};

const REPUBLISH: &str = r#"[{"republish":{"topic":"PRODUCT01/dev/out"}}]"#;

fn payload(sql: &str) -> Value {
    json!({
        "Sql": STANDARD.encode(sql),
        "Actions": REPUBLISH,
        "Description": "hot rooms",
        "RuleDisabled": false,
    })
}

fn create(name: &str, sql: &str) -> Value {
    json!({ "RuleName": name, "TopicRulePayload": payload(sql) })
}

fn names(listed: &Value) -> Vec<&str> {
    listed["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["RuleName"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn rule_lifecycle_and_errors() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    let sql = "SELECT temp FROM 'PRODUCT01/+/event' WHERE temp > 30";
    api.call("CreateTopicRule", &create("hot", sql))
        .await
        .unwrap();
    assert_eq!(
        error_code(api.call("CreateTopicRule", &create("hot", sql)).await),
        "InvalidParameterValue.TopicRuleAlreadyExist"
    );

    let rule = &api
        .call("DescribeTopicRule", &json!({ "RuleName": "hot" }))
        .await
        .unwrap()["Rule"];
    assert_eq!(rule["RuleName"], "hot");
    assert_eq!(rule["Sql"], STANDARD.encode(sql));
    assert_eq!(rule["Actions"], REPUBLISH);
    assert_eq!(rule["Description"], "hot rooms");
    assert_eq!(rule["RuleDisabled"], false);
    assert_eq!(rule["TopicPattern"], "PRODUCT01/+/event");
    assert!(rule["CreatedAt"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(rule["Stats"]["Matched"], 0, "the engine's counters: {rule}");

    // Enable/disable, with Tencent's codes for a state the rule already has.
    assert_eq!(
        error_code(
            api.call("EnableTopicRule", &json!({ "RuleName": "hot" }))
                .await
        ),
        "FailedOperation.RuleAlreadyEnabled"
    );
    api.call("DisableTopicRule", &json!({ "RuleName": "hot" }))
        .await
        .unwrap();
    assert_eq!(
        error_code(
            api.call("DisableTopicRule", &json!({ "RuleName": "hot" }))
                .await
        ),
        "FailedOperation.RuleAlreadyDisabled"
    );
    let listed = api.call("ListTopicRules", &json!({})).await.unwrap();
    assert_eq!(listed["Rules"][0]["RuleDisabled"], true);
    api.call("EnableTopicRule", &json!({ "RuleName": "hot" }))
        .await
        .unwrap();

    // Replace: new content; created_at kept.
    let mut replaced = payload("SELECT * FROM 'PRODUCT01/dev/data'");
    replaced["ErrorActions"] = json!(r#"[{"republish":{"topic":"PRODUCT01/dev/err"}}]"#);
    replaced["RuleDisabled"] = json!(true);
    api.call(
        "ReplaceTopicRule",
        &json!({ "RuleName": "hot", "TopicRulePayload": replaced }),
    )
    .await
    .unwrap();
    let after = &api
        .call("DescribeTopicRule", &json!({ "RuleName": "hot" }))
        .await
        .unwrap()["Rule"];
    assert_eq!(after["TopicPattern"], "PRODUCT01/dev/data");
    assert_eq!(after["RuleDisabled"], true);
    assert_eq!(after["CreatedAt"], rule["CreatedAt"]);
    assert!(after["ErrorActions"].as_str().unwrap().contains("dev/err"));

    // Every action on a missing rule.
    for action in [
        "DescribeTopicRule",
        "EnableTopicRule",
        "DisableTopicRule",
        "DeleteTopicRule",
    ] {
        assert_eq!(
            error_code(api.call(action, &json!({ "RuleName": "ghost" })).await),
            "ResourceNotFound.TopicRuleNotExist",
            "{action}"
        );
    }
    assert_eq!(
        error_code(api.call("ReplaceTopicRule", &create("ghost", sql)).await),
        "ResourceNotFound.TopicRuleNotExist"
    );

    // Bad payloads.
    let mut no_actions = create("empty", sql);
    no_actions["TopicRulePayload"]["Actions"] = json!("[]");
    assert_eq!(
        error_code(api.call("CreateTopicRule", &no_actions).await),
        "InvalidParameterValue.ActionNil"
    );
    no_actions["TopicRulePayload"]
        .as_object_mut()
        .unwrap()
        .remove("Actions");
    assert_eq!(
        error_code(api.call("CreateTopicRule", &no_actions).await),
        "InvalidParameterValue.ActionNil"
    );
    let mut bad_sql = create("badsql", sql);
    bad_sql["TopicRulePayload"]["Sql"] = json!("SELECT * FROM 'not/base64'");
    let (code, message) = error_of(api.call("CreateTopicRule", &bad_sql).await);
    assert_eq!(code, "InvalidParameterValue.InvalidSQL");
    assert!(message.contains("base64"), "{message}");
    let six = format!("[{}]", [r#"{"republish":{"topic":"a/b/c"}}"#; 6].join(","));
    let mut too_many = create("many", sql);
    too_many["TopicRulePayload"]["Actions"] = json!(six);
    let (code, message) = error_of(api.call("CreateTopicRule", &too_many).await);
    assert_eq!(code, "InvalidParameterValue");
    assert!(message.contains("at most 5"), "{message}");
    assert_eq!(
        error_code(api.call("CreateTopicRule", &create("no-dashes", sql)).await),
        "InvalidParameterValue"
    );
    assert_eq!(
        error_code(
            api.call("CreateTopicRule", &json!({ "RuleName": "x" }))
                .await
        ),
        "MissingParameter"
    );

    api.call("DeleteTopicRule", &json!({ "RuleName": "hot" }))
        .await
        .unwrap();
    let listed = api.call("ListTopicRules", &json!({})).await.unwrap();
    assert_eq!(listed["TotalCnt"], 0);
}

#[tokio::test]
async fn rules_page_and_survive_kill_9() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    let all: Vec<String> = (0..12).map(|i| format!("rule_{i:02}")).collect();
    for name in &all {
        api.call("CreateTopicRule", &create(name, "SELECT * FROM 'a/b/c'"))
            .await
            .unwrap();
    }
    api.call("DisableTopicRule", &json!({ "RuleName": "rule_03" }))
        .await
        .unwrap();

    // Tencent's PageNum (from 1) / PageSize, and Eddy's Offset / Limit.
    let mut seen = Vec::new();
    for page in 1..=3 {
        let listed = api
            .call("ListTopicRules", &json!({ "PageNum": page, "PageSize": 5 }))
            .await
            .unwrap();
        assert_eq!(listed["TotalCnt"], 12);
        seen.extend(names(&listed).iter().map(|s| (*s).to_owned()));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, all, "pages cover every rule once: {seen:?}");
    let listed = api
        .call("ListTopicRules", &json!({ "Offset": 10, "Limit": 10 }))
        .await
        .unwrap();
    assert_eq!(names(&listed), &seen[10..]);
    assert_eq!(
        error_code(
            api.call("ListTopicRules", &json!({ "PageNum": 0, "PageSize": 5 }))
                .await
        ),
        "InvalidParameterValue"
    );

    hub.kill9();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    let listed = api
        .call("ListTopicRules", &json!({ "PageNum": 1, "PageSize": 50 }))
        .await
        .unwrap();
    assert_eq!(names(&listed), seen);
    let rule = &api
        .call("DescribeTopicRule", &json!({ "RuleName": "rule_03" }))
        .await
        .unwrap()["Rule"];
    assert_eq!(rule["RuleDisabled"], true);
    assert_eq!(rule["Sql"], STANDARD.encode("SELECT * FROM 'a/b/c'"));
}

/// The API refuses SQL the engine cannot compile, with Tencent's code and the position of
/// the fault, and actions it cannot run; the dry run answers with the engine's output.
#[tokio::test]
async fn invalid_sql_names_line_and_column() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    let (code, message) = error_of(
        api.call(
            "CreateTopicRule",
            &create("broken", "SELECT temp,\nFROM 'a/b/c' WHERE"),
        )
        .await,
    );
    assert_eq!(code, "InvalidParameterValue.InvalidSQL");
    assert!(
        message.contains("line") && message.contains("column"),
        "{message}"
    );
    assert_eq!(
        error_code(
            api.call("DescribeTopicRule", &json!({ "RuleName": "broken" }))
                .await
        ),
        "ResourceNotFound.TopicRuleNotExist",
        "a rule that does not compile is not stored"
    );
    // An action without the instance it runs under, or naming a destination the hub does
    // not have, is refused, clearly.
    for (actions, needle) in [
        (
            r#"[{"ckafka":{"topic":{"name":"t"}}}]"#,
            "needs an \"instance\"",
        ),
        (
            r#"[{"ckafka":{"instance":{"id":"ck-1","name":"kafka"},"topic":{"name":"t"}}}]"#,
            "no destination named \"ck-1\" or \"kafka\"",
        ),
        (
            r#"[{"plugin":{"name":"nowhere"}}]"#,
            "no destination named \"nowhere\"",
        ),
    ] {
        let mut refused = payload("SELECT * FROM 'a/b/c'");
        refused["Actions"] = json!(actions);
        let (code, message) = error_of(
            api.call(
                "CreateTopicRule",
                &json!({ "RuleName": "fwd", "TopicRulePayload": refused }),
            )
            .await,
        );
        assert_eq!(code, "InvalidParameterValue");
        assert!(message.contains(needle), "{message}");
    }
    // And the dry run answers with the engine's output.
    let out = api
        .call(
            "TestTopicRule",
            &json!({
                "Sql": STANDARD.encode("SELECT temp, deviceName() AS dev FROM 'a/+/c' WHERE temp > 30"),
                "Actions": r#"[{"republish":{"topic":"x/y"}}]"#,
                "Messages": [
                    { "Topic": "a/b/c", "Payload": "{\"temp\":31}", "ProductId": "ABCDE12345", "DeviceName": "d1" },
                    { "Topic": "a/b/c", "Payload": "{\"temp\":3}" },
                    { "Topic": "z/b/c", "Payload": "{\"temp\":99}" },
                ],
            }),
        )
        .await
        .unwrap();
    assert_eq!(out["Matched"], json!([true, true, false]), "{out}");
    assert_eq!(out["Rows"], json!([{ "temp": 31, "dev": "d1" }]), "{out}");
    assert_eq!(out["Actions"][0]["Target"], "x/y", "{out}");
    let sent: Value =
        serde_json::from_str(out["Actions"][0]["Payloads"][0].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({ "temp": 31, "dev": "d1" }), "{out}");
}

#[tokio::test]
async fn forward_actions_reach_only_the_configured_hosts() {
    let dir = workdir();
    let hub = Hub::start_configured(
        dir.path(),
        "",
        "[plugins]\nforward-hosts = [\"127.0.0.1:9000\", \"hooks.example\"]\n",
        &[],
    );
    let api = hub.client();
    for (i, (url, allowed)) in [
        ("http://127.0.0.1:9000/hook", true),
        ("https://hooks.example/in", true),
        ("http://127.0.0.1:9001/hook", false),
        ("http://169.254.169.254/latest/meta-data", false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rule = payload("SELECT * FROM 'a/b/c'");
        rule["Actions"] = json!(json!([{ "forward": { "api": url } }]).to_string());
        let result = api
            .call(
                "CreateTopicRule",
                &json!({ "RuleName": format!("fwd_{i}"), "TopicRulePayload": rule }),
            )
            .await;
        if allowed {
            result.unwrap_or_else(|e| panic!("{url}: {e}"));
        } else {
            let (code, message) = error_of(result);
            assert_eq!(code, "InvalidParameterValue", "{url}");
            assert!(
                message.contains("plugins.forward-hosts"),
                "{url}: {message}"
            );
        }
    }
    // Error actions are held to the same list.
    let mut rule = payload("SELECT * FROM 'a/b/c'");
    rule["ErrorActions"] = json!(r#"[{"forward":{"api":"http://10.0.0.1/x"}}]"#);
    let (code, _) = error_of(
        api.call(
            "CreateTopicRule",
            &json!({ "RuleName": "fwd_err", "TopicRulePayload": rule }),
        )
        .await,
    );
    assert_eq!(code, "InvalidParameterValue");
}
