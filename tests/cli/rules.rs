//! `eddy rule …` against a real hub.

use serde_json::Value;

use crate::support::{Hub, workdir};
use crate::{eddy, field, manage, ok, stderr};

#[test]
fn rule_commands_drive_the_api() {
    let help = ok(eddy(&["rule", "--help"]));
    for sub in [
        "create", "list", "show", "enable", "disable", "delete", "replace", "test",
    ] {
        assert!(help.contains(sub), "rule --help lists {sub}:\n{help}");
    }
    let create_help = ok(eddy(&["rule", "create", "--help"]));
    for flag in [
        "--sql",
        "--action",
        "--actions",
        "--description",
        "--disabled",
    ] {
        assert!(create_help.contains(flag), "{flag}:\n{create_help}");
    }

    let dir = workdir();
    let hub = Hub::start(dir.path());
    let sql = "SELECT temp FROM 'PRODUCT01/+/event' WHERE temp > 30";
    let out = ok(manage(
        &hub,
        &[
            "rule",
            "create",
            "hot",
            "--sql",
            sql,
            "--action",
            r#"{"republish":{"topic":"PRODUCT01/dev/out"}}"#,
            "--action",
            r#"{"republish":{"topic":"PRODUCT01/dev/copy"}}"#,
            "--description",
            "hot rooms",
        ],
    ));
    assert!(out.contains("created rule hot (enabled)"), "{out}");
    ok(manage(
        &hub,
        &[
            "rule",
            "create",
            "cold",
            "--sql",
            "SELECT * FROM 'a/b/c'",
            "--actions",
            r#"[{"republish":{"topic":"a/b/d"}}]"#,
            "--disabled",
        ],
    ));

    let shown = ok(manage(&hub, &["rule", "show", "hot"]));
    assert_eq!(
        field(&shown, "Sql"),
        sql,
        "the SQL is shown decoded:\n{shown}"
    );
    assert_eq!(field(&shown, "State"), "enabled", "{shown}");
    assert_eq!(
        field(&shown, "TopicPattern"),
        "PRODUCT01/+/event",
        "{shown}"
    );
    assert!(
        shown.contains("dev/out") && shown.contains("dev/copy"),
        "{shown}"
    );
    assert!(
        shown.contains("stats:") && shown.contains("\"Matched\": 0"),
        "the engine's counters:\n{shown}"
    );

    let listed = ok(manage(&hub, &["rule", "list"]));
    assert!(
        listed.contains("hot") && listed.contains("cold"),
        "{listed}"
    );
    assert!(
        listed.contains("disabled") && listed.contains("2 rule(s) in all"),
        "{listed}"
    );

    ok(manage(&hub, &["rule", "enable", "cold"]));
    ok(manage(&hub, &["rule", "disable", "hot"]));
    let json: Value =
        serde_json::from_str(&ok(manage(&hub, &["rule", "show", "hot", "--json"]))).unwrap();
    assert_eq!(json["Rule"]["RuleDisabled"], true);

    ok(manage(
        &hub,
        &[
            "rule",
            "replace",
            "hot",
            "--sql",
            "SELECT * FROM 'x/y/z'",
            "--action",
            r#"{"republish":{"topic":"x/y/out"}}"#,
        ],
    ));
    let shown = ok(manage(&hub, &["rule", "show", "hot"]));
    assert_eq!(field(&shown, "TopicPattern"), "x/y/z", "{shown}");
    assert_eq!(
        field(&shown, "State"),
        "disabled",
        "replace keeps the state:\n{shown}"
    );

    // Errors are the API's, named; the exit status says it failed.
    let again = manage(&hub, &["rule", "enable", "cold"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("FailedOperation.RuleAlreadyEnabled"),
        "{}",
        stderr(&again)
    );
    let missing = manage(&hub, &["rule", "delete", "ghost"]);
    assert!(
        stderr(&missing).contains("ResourceNotFound.TopicRuleNotExist"),
        "{}",
        stderr(&missing)
    );
    let no_action = manage(&hub, &["rule", "create", "x", "--sql", "SELECT 1"]);
    assert!(!no_action.status.success());
    assert!(
        stderr(&no_action).contains("at least one action"),
        "{}",
        stderr(&no_action)
    );
    let bad_json = manage(
        &hub,
        &[
            "rule", "create", "x", "--sql", "SELECT 1", "--action", "{nope",
        ],
    );
    assert!(
        stderr(&bad_json).contains("--action"),
        "{}",
        stderr(&bad_json)
    );
    let test = manage(
        &hub,
        &[
            "rule",
            "test",
            "--sql",
            "SELECT * FROM 'a/b'",
            "--topic",
            "a/b",
            "--payload",
            r#"{"temp":31}"#,
            "--action",
            r#"{"republish":{"topic":"a/out"}}"#,
        ],
    );
    let test = ok(test);
    assert!(
        test.contains(r#""temp": 31"#) && test.contains("a/out"),
        "the row and the action's target:\n{test}"
    );

    ok(manage(&hub, &["rule", "delete", "hot"]));
    let listed = ok(manage(&hub, &["rule", "list"]));
    assert!(
        !listed.contains("hot") && listed.contains("1 rule(s) in all"),
        "{listed}"
    );
}
