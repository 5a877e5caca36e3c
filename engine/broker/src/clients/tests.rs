//! Admission and ACL decisions of the open broker, end to end through `ClientRules`.

use std::sync::atomic::Ordering;

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
use eddy_core::{Topic, TopicFilter};

use super::*;

/// A PHC string at argon2's minimum cost, so tests verify in microseconds.
fn cheap_hash(password: &str) -> String {
    let params = Params::new(8, 1, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_with_salt(password.as_bytes(), b"fixed-test-salt!")
        .unwrap()
        .to_string()
}

fn user(name: &str, password: &str) -> ClientUser {
    ClientUser {
        username: name.into(),
        password_hash: cheap_hash(password),
    }
}

fn rule(permission: Permission, action: AclAction, topics: &[&str]) -> AclRule {
    AclRule {
        permission,
        action,
        username: None,
        client_id: None,
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
    }
}

fn allow(action: AclAction, topics: &[&str]) -> AclRule {
    rule(Permission::Allow, action, topics)
}

fn deny(action: AclAction, topics: &[&str]) -> AclRule {
    rule(Permission::Deny, action, topics)
}

fn settings(users: Vec<ClientUser>, acl: Vec<AclRule>) -> ClientsSettings {
    ClientsSettings {
        enabled: true,
        anonymous: false,
        users,
        acl,
        acl_no_match: Permission::Deny,
    }
}

fn rules(users: Vec<ClientUser>, acl: Vec<AclRule>) -> ClientRules {
    ClientRules::new(settings(users, acl)).unwrap()
}

fn id(client_id: &str, username: Option<&str>) -> ClientIdentity {
    ClientIdentity {
        client_id: client_id.into(),
        username: username.map(str::to_owned),
    }
}

fn t(s: &str) -> Topic {
    Topic::parse(s).unwrap()
}

fn f(s: &str) -> TopicFilter {
    TopicFilter::parse(s).unwrap()
}

fn verifications(rules: &ClientRules) -> u64 {
    rules.verifier.verifications.load(Ordering::Relaxed)
}

// --- admission ---

#[tokio::test]
async fn disabled_refuses_everyone() {
    let mut s = settings(vec![user("alice", "pw")], vec![]);
    s.enabled = false;
    s.anonymous = true;
    let r = ClientRules::new(s).unwrap();
    assert!(!r.enabled());
    assert_eq!(
        r.authenticate("c1", Some("alice"), Some(b"pw")).await,
        Err(ClientRefusal::Disabled)
    );
    assert_eq!(
        r.authenticate("c1", None, None).await,
        Err(ClientRefusal::Disabled)
    );
}

#[tokio::test]
async fn anonymous_clients_only_when_allowed() {
    let mut s = settings(vec![], vec![]);
    let closed = ClientRules::new(s.clone()).unwrap();
    assert_eq!(
        closed.authenticate("c1", None, None).await,
        Err(ClientRefusal::AnonymousNotAllowed)
    );
    s.anonymous = true;
    let open = ClientRules::new(s).unwrap();
    assert_eq!(
        open.authenticate("c1", None, None).await,
        Ok(id("c1", None))
    );
    assert_eq!(
        open.authenticate("c1", None, Some(b"ignored")).await,
        Ok(id("c1", None)),
        "a password without a username is ignored"
    );
}

#[tokio::test]
async fn an_empty_client_id_is_refused() {
    let mut s = settings(vec![user("alice", "pw")], vec![]);
    s.anonymous = true;
    let r = ClientRules::new(s).unwrap();
    for username in [None, Some("alice")] {
        assert_eq!(
            r.authenticate("", username, Some(b"pw")).await,
            Err(ClientRefusal::ClientIdInvalid)
        );
    }
}

#[tokio::test]
async fn passwords_are_checked_and_failures_look_alike() {
    let mut s = settings(vec![user("alice", "pw-a"), user("bob", "pw-b")], vec![]);
    s.anonymous = true;
    let r = ClientRules::new(s).unwrap();
    assert_eq!(
        r.authenticate("c1", Some("alice"), Some(b"pw-a")).await,
        Ok(id("c1", Some("alice")))
    );
    assert_eq!(
        r.authenticate("c2", Some("bob"), Some(b"pw-b")).await,
        Ok(id("c2", Some("bob")))
    );
    let refused = [
        (Some("alice"), Some(&b"pw-b"[..])),
        (Some("alice"), Some(&b""[..])),
        (Some("alice"), None),
        (Some("mallory"), Some(&b"pw-a"[..])),
        (Some("mallory"), None),
        (Some(""), Some(&b"pw-a"[..])),
    ];
    for (username, password) in refused {
        assert_eq!(
            r.authenticate("c1", username, password).await,
            Err(ClientRefusal::BadCredentials),
            "{username:?} / {password:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_user_costs_a_verification_like_a_wrong_password() {
    let r = rules(vec![user("alice", "pw")], vec![]);
    let before = verifications(&r);
    assert!(
        r.authenticate("c", Some("mallory"), Some(b"pw"))
            .await
            .is_err()
    );
    assert_eq!(verifications(&r), before + 1, "checked against the decoy");
    let none = rules(vec![], vec![]);
    assert_eq!(
        none.authenticate("c", Some("mallory"), Some(b"pw")).await,
        Err(ClientRefusal::BadCredentials)
    );
}

#[tokio::test]
async fn the_cache_spares_argon2_but_never_admits_a_wrong_password() {
    let r = rules(vec![user("alice", "pw"), user("bob", "pw")], vec![]);
    assert!(
        r.authenticate("c1", Some("alice"), Some(b"pw"))
            .await
            .is_ok()
    );
    assert_eq!(verifications(&r), 1);
    assert_eq!(r.verifier.cached_users(), 1);
    for _ in 0..5 {
        assert!(
            r.authenticate("c1", Some("alice"), Some(b"pw"))
                .await
                .is_ok()
        );
    }
    assert_eq!(verifications(&r), 1, "reconnects hit the cache");

    // Alice is cached: a wrong password misses the cache, runs argon2 and fails.
    assert_eq!(
        r.authenticate("c1", Some("alice"), Some(b"pw2")).await,
        Err(ClientRefusal::BadCredentials)
    );
    assert_eq!(verifications(&r), 2);
    // Bob has the same password, but alice's entry is not his.
    assert!(r.authenticate("c2", Some("bob"), Some(b"pw")).await.is_ok());
    assert_eq!(verifications(&r), 3);
    // The earlier failure did not evict alice.
    assert!(
        r.authenticate("c1", Some("alice"), Some(b"pw"))
            .await
            .is_ok()
    );
    assert_eq!(verifications(&r), 3);
}

// --- topic ACL ---

#[test]
fn no_rule_means_acl_no_match() {
    let mut s = settings(vec![], vec![]);
    let denied = ClientRules::new(s.clone())
        .unwrap()
        .permissions(&id("c", None));
    assert!(!denied.may_publish(&t("a")));
    assert!(!denied.may_subscribe(&f("a")));
    s.acl_no_match = Permission::Allow;
    let allowed = ClientRules::new(s).unwrap().permissions(&id("c", None));
    assert!(allowed.may_publish(&t("a")));
    assert!(allowed.may_subscribe(&f("#")));
}

#[test]
fn the_first_applicable_rule_wins() {
    use AclAction::*;
    let r = rules(
        vec![],
        vec![
            deny(All, &["public/secret"]),
            allow(Publish, &["public/#"]),
            deny(Publish, &["public/late"]),
            allow(Subscribe, &["public/+"]),
        ],
    );
    let p = r.permissions(&id("c", None));
    assert!(p.may_publish(&t("public/x")));
    assert!(p.may_publish(&t("public/late")), "the allow came first");
    assert!(!p.may_publish(&t("public/secret")));
    assert!(!p.may_publish(&t("private/x")));
    assert!(p.may_subscribe(&f("public/x")));
    assert!(!p.may_subscribe(&f("public/secret")));
    assert!(
        !p.may_subscribe(&f("public/+")),
        "the deny overlaps public/secret"
    );
}

#[test]
fn allow_must_cover_and_deny_need_only_overlap() {
    use AclAction::*;
    let r = rules(
        vec![],
        vec![
            deny(Subscribe, &["home/+/secret"]),
            allow(Subscribe, &["home/#", "sensors/+/temp"]),
        ],
    );
    let p = r.permissions(&id("c", None));
    assert!(p.may_subscribe(&f("home/kitchen/light")));
    assert!(p.may_subscribe(&f("home/kitchen/+/x")));
    assert!(
        !p.may_subscribe(&f("home/#")),
        "could receive home/x/secret"
    );
    assert!(!p.may_subscribe(&f("home/+/+")));
    assert!(!p.may_subscribe(&f("#")));
    assert!(p.may_subscribe(&f("sensors/+/temp")));
    assert!(p.may_subscribe(&f("sensors/a/temp")));
    assert!(
        !p.may_subscribe(&f("sensors/#")),
        "overlaps the allow but is not covered by it"
    );
    assert!(!p.may_subscribe(&f("sensors/a/+")));
}

#[test]
fn placeholders_are_filled_with_the_clients_own_names() {
    use AclAction::*;
    let r = rules(
        vec![user("alice", "pw"), user("bob", "pw")],
        vec![allow(All, &["users/%u/#", "clients/%c/+", "lit/100%%/%c"])],
    );
    let alice = r.permissions(&id("phone", Some("alice")));
    assert!(alice.may_publish(&t("users/alice/x/y")));
    assert!(alice.may_subscribe(&f("users/alice/#")));
    assert!(alice.may_publish(&t("clients/phone/status")));
    assert!(alice.may_publish(&t("lit/100%/phone")));
    assert!(!alice.may_publish(&t("users/bob/x")));
    assert!(!alice.may_subscribe(&f("users/+/x")));
    assert!(!alice.may_publish(&t("clients/laptop/status")));
    let bob = r.permissions(&id("laptop", Some("bob")));
    assert!(bob.may_publish(&t("users/bob/x")));
    assert!(!bob.may_publish(&t("users/alice/x")));
}

#[test]
fn unsafe_values_never_widen_an_allow() {
    use AclAction::*;
    let r = rules(
        vec![user("alice", "pw")],
        vec![allow(All, &["users/%u/#", "clients/%c", "public/#"])],
    );
    // The allow stays for its safe patterns, so public/# still works for everyone.
    for client_id in ["+", "#", "a/b", "x+", "nul\0"] {
        let p = r.permissions(&id(client_id, Some("alice")));
        assert!(!p.may_subscribe(&f("clients/#")), "{client_id:?}");
        assert!(!p.may_subscribe(&f("clients/+")), "{client_id:?}");
        assert!(!p.may_publish(&t("clients/a/b")), "{client_id:?}");
        assert!(p.may_publish(&t("users/alice/x")), "{client_id:?}");
        assert!(p.may_publish(&t("public/x")), "{client_id:?}");
    }
    // Anonymous: %u has no value; an empty username is no better.
    for username in [None, Some("")] {
        let p = r.permissions(&id("c", username));
        assert!(!p.may_subscribe(&f("users/+/#")), "{username:?}");
        assert!(!p.may_publish(&t("users//x")), "{username:?}");
        assert!(p.may_publish(&t("clients/c")), "{username:?}");
    }
}

#[test]
fn a_placeholder_cannot_reach_the_dollar_namespace() {
    use AclAction::*;
    let r = rules(vec![], vec![allow(All, &["%c/#", "$share/%c/x"])]);
    let p = r.permissions(&id("$SYS", None));
    assert!(!p.may_subscribe(&f("$SYS/#")));
    assert!(!p.may_publish(&t("$SYS/broker/load")));
    assert!(
        p.may_subscribe(&f("$share/$SYS/x")),
        "the template itself is in $, the value only fills a level"
    );
    let ok = r.permissions(&id("dev", None));
    assert!(ok.may_subscribe(&f("dev/#")));
}

#[test]
fn unsafe_values_make_a_deny_deny_everything() {
    use AclAction::*;
    let r = rules(
        vec![],
        vec![
            deny(Publish, &["clients/%c/admin"]),
            deny(Subscribe, &["users/%u/private"]),
            allow(All, &["#"]),
        ],
    );
    let safe = r.permissions(&id("dev", Some("carol")));
    assert!(safe.may_publish(&t("clients/other/admin")));
    assert!(!safe.may_publish(&t("clients/dev/admin")));
    let sneaky = r.permissions(&id("+", None));
    assert!(!sneaky.may_publish(&t("clients/x/admin")));
    assert!(!sneaky.may_publish(&t("anything")), "fail closed");
    assert!(
        !sneaky.may_subscribe(&f("anything")),
        "anonymous: %u unsafe"
    );
}

#[test]
fn rules_for_one_user_or_client_apply_to_it_only() {
    use AclAction::*;
    let mut for_alice = allow(All, &["admin/#"]);
    for_alice.username = Some("alice".into());
    let mut for_gateway = allow(Publish, &["telemetry/#"]);
    for_gateway.client_id = Some("gw-1".into());
    let mut both = allow(Subscribe, &["both/#"]);
    both.username = Some("alice".into());
    both.client_id = Some("gw-1".into());
    let r = rules(
        vec![user("alice", "pw"), user("bob", "pw")],
        vec![for_alice, for_gateway, both],
    );
    let alice = r.permissions(&id("laptop", Some("alice")));
    assert!(alice.may_publish(&t("admin/x")));
    assert!(!alice.may_publish(&t("telemetry/x")));
    assert!(!alice.may_subscribe(&f("both/x")));
    let bob_gw = r.permissions(&id("gw-1", Some("bob")));
    assert!(!bob_gw.may_publish(&t("admin/x")));
    assert!(bob_gw.may_publish(&t("telemetry/x")));
    assert!(!bob_gw.may_subscribe(&f("both/x")));
    let alice_gw = r.permissions(&id("gw-1", Some("alice")));
    assert!(alice_gw.may_subscribe(&f("both/x")));
    let anonymous_gw = r.permissions(&id("gw-1", None));
    assert!(!anonymous_gw.may_publish(&t("admin/x")));
    assert!(anonymous_gw.may_publish(&t("telemetry/x")));
}

#[test]
fn wildcard_rules_do_not_reach_dollar_topics() {
    use AclAction::*;
    let r = rules(vec![], vec![allow(All, &["#"])]);
    let p = r.permissions(&id("c", None));
    assert!(p.may_publish(&t("a/b")));
    assert!(p.may_subscribe(&f("#")));
    assert!(!p.may_publish(&t("$SYS/broker/load")));
    assert!(!p.may_subscribe(&f("$SYS/#")));
    assert!(!p.may_subscribe(&f("$SYS/broker/load")));
    let sys = rules(vec![], vec![allow(Subscribe, &["$SYS/#"])]);
    let p = sys.permissions(&id("c", None));
    assert!(p.may_subscribe(&f("$SYS/broker/+")));
    assert!(!p.may_subscribe(&f("#")));
    // A deny of everything ordinary does not overlap $ topics either.
    let r = rules(
        vec![],
        vec![deny(Subscribe, &["#"]), allow(Subscribe, &["$SYS/#"])],
    );
    let p = r.permissions(&id("c", None));
    assert!(p.may_subscribe(&f("$SYS/x")));
    assert!(!p.may_subscribe(&f("a")));
}

// --- validation ---

#[test]
fn configuration_errors_name_the_entry() {
    use AclAction::*;
    let err = |users: Vec<ClientUser>, acl: Vec<AclRule>| {
        ClientRules::new(settings(users, acl)).unwrap_err()
    };
    assert_eq!(
        err(vec![user("", "pw")], vec![]),
        ClientsConfigError::EmptyUsername { index: 0 }
    );
    assert_eq!(
        err(
            vec![user("a", "pw"), user("b", "pw"), user("a", "x")],
            vec![]
        ),
        ClientsConfigError::DuplicateUser {
            index: 2,
            username: "a".into()
        }
    );
    let mut plain = user("carol", "pw");
    plain.password_hash = "hunter2".into();
    match err(vec![user("a", "pw"), plain], vec![]) {
        ClientsConfigError::BadPasswordHash {
            index: 1, username, ..
        } => assert_eq!(username, "carol"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err(vec![], vec![allow(All, &[])]),
        ClientsConfigError::NoTopics { index: 0 }
    );
    let mut ghost = allow(All, &["a"]);
    ghost.username = Some("alise".into());
    assert_eq!(
        err(vec![user("alice", "pw")], vec![allow(All, &["a"]), ghost]),
        ClientsConfigError::UnknownRuleUser {
            index: 1,
            username: "alise".into()
        }
    );
    let mut empty_client = allow(All, &["a"]);
    empty_client.client_id = Some(String::new());
    assert_eq!(
        err(vec![], vec![empty_client]),
        ClientsConfigError::EmptyRuleClientId { index: 0 }
    );
    let bad_patterns = [
        (
            "a/#/b",
            PatternError::Topic(eddy_core::TopicError::BadMultiLevelWildcard),
        ),
        (
            "a/%c+",
            PatternError::Topic(eddy_core::TopicError::BadSingleLevelWildcard),
        ),
        ("", PatternError::Topic(eddy_core::TopicError::Empty)),
        ("a/%d", PatternError::UnknownPlaceholder('d')),
        ("a/%", PatternError::TrailingPercent),
    ];
    for (pattern, reason) in bad_patterns {
        assert_eq!(
            err(vec![], vec![allow(Publish, &["ok/%c", pattern])]),
            ClientsConfigError::BadTopicPattern {
                index: 0,
                pattern: pattern.into(),
                reason
            },
            "{pattern:?}"
        );
    }
    let message = err(vec![], vec![allow(All, &["ok"]), deny(All, &["x/%q"])]).to_string();
    assert!(message.starts_with("acl[1]: topic \"x/%q\""), "{message}");
}

#[test]
fn the_hash_stays_out_of_debug_output() {
    let u = user("alice", "pw");
    let printed = format!("{u:?} {:?}", rules(vec![u.clone()], vec![]));
    assert!(!printed.contains("argon2"), "{printed}");
    assert!(printed.contains("alice"), "{printed}");
}
