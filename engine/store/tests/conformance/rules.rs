//! Checks: topic rules.

use eddy_store::{Store, TopicRuleChange, TopicRuleRecord};

use crate::fixtures::*;

fn rule(name: &str, created_at: i64) -> TopicRuleRecord {
    TopicRuleRecord {
        name: name.to_owned(),
        sql: format!("SELECT * FROM 'p/{name}/up' WHERE t > 1"),
        actions: r#"[{"republish":{"topic":"p/d/x"}}]"#.to_owned(),
        error_actions: String::new(),
        description: format!("rule {name}"),
        disabled: false,
        created_at,
        modified_at: created_at,
    }
}

fn names(items: &[TopicRuleRecord]) -> Vec<&str> {
    items.iter().map(|r| r.name.as_str()).collect()
}

pub(crate) async fn topic_rules(store: &dyn Store) {
    assert!(store.all_topic_rules().await.unwrap().is_empty());
    let mut first = rule("first", 100);
    first.error_actions = r#"[{"forward":{"api":"http://e"}}]"#.to_owned();
    first.description = "unicode: 温度 ✓ and 'quotes'".to_owned();
    store.insert_topic_rule(&first).await.unwrap();
    // Created at the same second: ties order by name, bytewise ("Zed" < "alpha").
    let mut disabled = rule("alpha", 200);
    disabled.disabled = true;
    store.insert_topic_rule(&disabled).await.unwrap();
    store.insert_topic_rule(&rule("Zed", 200)).await.unwrap();
    assert_conflict(
        store.insert_topic_rule(&rule("first", 300)).await,
        "topic rule",
    );

    assert_eq!(store.topic_rule("first").await.unwrap().unwrap(), first);
    assert_eq!(store.topic_rule("alpha").await.unwrap().unwrap(), disabled);
    assert!(
        store.topic_rule("FIRST").await.unwrap().is_none(),
        "names are case-sensitive"
    );
    assert!(store.topic_rule("missing").await.unwrap().is_none());

    let all = store.all_topic_rules().await.unwrap();
    assert_eq!(names(&all), ["first", "Zed", "alpha"]);
    let listed = store.list_topic_rules(page(1, 1)).await.unwrap();
    assert_eq!(listed.total, 3);
    assert_eq!(names(&listed.items), ["Zed"]);
    let listed = store.list_topic_rules(page(2, 10)).await.unwrap();
    assert_eq!(names(&listed.items), ["alpha"]);
    let listed = store.list_topic_rules(page(5, 10)).await.unwrap();
    assert_eq!(listed.total, 3);
    assert!(listed.items.is_empty());

    // Replace keeps created_at; `disabled: None` keeps the state.
    let change = TopicRuleChange {
        sql: "SELECT a FROM 'x/#'".to_owned(),
        actions: "[]".to_owned(),
        error_actions: String::new(),
        description: String::new(),
        disabled: None,
        modified_at: 500,
    };
    assert!(store.replace_topic_rule("alpha", &change).await.unwrap());
    let got = store.topic_rule("alpha").await.unwrap().unwrap();
    assert_eq!(
        got,
        TopicRuleRecord {
            name: "alpha".to_owned(),
            sql: change.sql.clone(),
            actions: change.actions.clone(),
            error_actions: String::new(),
            description: String::new(),
            disabled: true,
            created_at: 200,
            modified_at: 500,
        }
    );
    let change = TopicRuleChange {
        disabled: Some(false),
        modified_at: 600,
        ..change
    };
    assert!(store.replace_topic_rule("alpha", &change).await.unwrap());
    assert!(!store.topic_rule("alpha").await.unwrap().unwrap().disabled);
    assert!(!store.replace_topic_rule("missing", &change).await.unwrap());

    assert!(
        store
            .set_topic_rule_disabled("first", true, 700)
            .await
            .unwrap()
    );
    let got = store.topic_rule("first").await.unwrap().unwrap();
    assert!(got.disabled);
    assert_eq!((got.created_at, got.modified_at), (100, 700));
    assert!(
        store
            .set_topic_rule_disabled("first", false, 800)
            .await
            .unwrap()
    );
    assert!(!store.topic_rule("first").await.unwrap().unwrap().disabled);
    assert!(
        !store
            .set_topic_rule_disabled("missing", true, 800)
            .await
            .unwrap()
    );

    assert!(store.delete_topic_rule("Zed").await.unwrap());
    assert!(!store.delete_topic_rule("Zed").await.unwrap());
    assert_eq!(
        names(&store.all_topic_rules().await.unwrap()),
        ["first", "alpha"]
    );
    // A deleted name can be used again.
    store.insert_topic_rule(&rule("Zed", 900)).await.unwrap();
    assert_eq!(store.list_topic_rules(page(0, 10)).await.unwrap().total, 3);
}
