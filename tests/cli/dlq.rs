//! `eddy dlq …` against a real hub: the commands reach the delivery actions.

use crate::support::{Hub, workdir};
use crate::{eddy, manage, ok, stderr};

#[test]
fn dlq_commands_drive_the_delivery_actions() {
    let help = ok(eddy(&["dlq", "--help"]));
    for sub in ["queues", "list", "show", "redrive"] {
        assert!(help.contains(sub), "dlq --help lists {sub}:\n{help}");
    }

    let dir = workdir();
    let hub = Hub::start(dir.path());
    ok(manage(
        &hub,
        &[
            "rule",
            "create",
            "hot",
            "--sql",
            "SELECT temp FROM 'PRODUCT01/+/event'",
            "--action",
            r#"{"republish":{"topic":"PRODUCT01/dev/out"}}"#,
            "--error-actions",
            r#"[{"republish":{"topic":"PRODUCT01/dev/errors"}}]"#,
        ],
    ));
    // The rule's queues exist once it is loaded (its destinations attach in the background).
    let queues = ok(manage(&hub, &["dlq", "queues", "--json"]));
    let queues: serde_json::Value = serde_json::from_str(&queues).expect("JSON");
    let names: Vec<&str> = queues["Queues"]
        .as_array()
        .expect("Queues")
        .iter()
        .filter_map(|q| q["Queue"].as_str())
        .collect();
    for queue in names.iter() {
        assert!(queue.starts_with("rule/hot/"), "{queue}");
    }
    let listed = ok(manage(&hub, &["dlq", "list", "--queue", "rule/hot/0"]));
    assert!(
        listed.contains("queue") && listed.contains("error"),
        "{listed}"
    );
    let missing = manage(&hub, &["dlq", "show", "rule/hot/0", "7"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("ResourceNotFound.DeadLetterNotExist"),
        "{}",
        stderr(&missing)
    );
    let none = ok(manage(&hub, &["dlq", "redrive", "rule/hot/0"]));
    assert!(
        none.contains("redrove 0 dead letter(s) of rule/hot/0"),
        "{none}"
    );
    let bad = manage(&hub, &["dlq", "list", "--limit", "0"]);
    assert!(stderr(&bad).contains("Limit"), "{}", stderr(&bad));
}
