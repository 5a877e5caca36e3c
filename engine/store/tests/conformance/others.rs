//! Checks: topic policies, API keys, and secrets kept out of Debug output.

use eddy_core::EncryptionType;
use eddy_core::secret::{ExposeSecret, secret};
use eddy_store::{ApiKeyOrigin, CaRecord, DeviceFilter, Store};

use crate::fixtures::*;

pub(crate) async fn topic_policies(store: &dyn Store) {
    store
        .insert_product(&product("TOPPROD001", "topics", 1))
        .await
        .unwrap();
    store
        .insert_product(&product("TOPPROD002", "topics-other", 1))
        .await
        .unwrap();
    let p1 = pid("TOPPROD001");
    for (suffix, privilege) in [("data", 2), ("control", 1), ("Zeta/up", 3), ("a/b/c", 3)] {
        store
            .insert_topic_policy(&policy("TOPPROD001", suffix, privilege))
            .await
            .unwrap();
    }
    store
        .insert_topic_policy(&policy("TOPPROD002", "data", 1))
        .await
        .unwrap();
    assert_conflict(
        store
            .insert_topic_policy(&policy("TOPPROD001", "data", 3))
            .await,
        "topic policy",
    );
    // The CHECK constraint on privilege is kept.
    assert_error_not_conflict(
        store
            .insert_topic_policy(&policy("TOPPROD001", "bad", 4))
            .await,
    );

    let listed = store.list_topic_policies(&p1).await.unwrap();
    let suffixes: Vec<&str> = listed.iter().map(|p| p.suffix.as_str()).collect();
    assert_eq!(
        suffixes,
        ["Zeta/up", "a/b/c", "control", "data"],
        "bytewise order"
    );
    assert_eq!(listed[3], policy("TOPPROD001", "data", 2));

    // Re-privilege in place.
    assert!(
        store
            .update_topic_policy(&p1, "data", "data", 3)
            .await
            .unwrap()
    );
    // Rename.
    assert!(
        store
            .update_topic_policy(&p1, "control", "cmd", 2)
            .await
            .unwrap()
    );
    // Rename onto an existing suffix clashes and changes nothing.
    assert_conflict(
        store
            .update_topic_policy(&p1, "cmd", "data", 1)
            .await
            .map(|_| ()),
        "topic policy",
    );
    assert!(
        !store
            .update_topic_policy(&p1, "missing", "anything", 1)
            .await
            .unwrap()
    );

    let listed = store.list_topic_policies(&p1).await.unwrap();
    let summary: Vec<(&str, i64)> = listed
        .iter()
        .map(|p| (p.suffix.as_str(), p.privilege))
        .collect();
    assert_eq!(
        summary,
        [("Zeta/up", 3), ("a/b/c", 3), ("cmd", 2), ("data", 3)]
    );
    let data = listed.iter().find(|p| p.suffix == "data").unwrap();
    assert_eq!(data.created_at, 1_000);
    assert!(data.updated_at >= 1_000);

    let other = store.list_topic_policies(&pid("TOPPROD002")).await.unwrap();
    assert_eq!(other, [policy("TOPPROD002", "data", 1)]);
    assert!(
        store
            .list_topic_policies(&pid("NOSUCHPROD"))
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn api_keys(store: &dyn Store) {
    assert!(store.api_key("nobody").await.unwrap().is_none());
    assert!(store.generated_api_key().await.unwrap().is_none());

    store
        .upsert_api_key(&api_key("cfg-id", "cfg-key-1", ApiKeyOrigin::Config, 50))
        .await
        .unwrap();
    assert!(
        store.generated_api_key().await.unwrap().is_none(),
        "config keys are not generated ones"
    );
    let got = store.api_key("cfg-id").await.unwrap().unwrap();
    assert_eq!(got.secret_id, "cfg-id");
    assert_eq!(got.secret_key.expose_secret(), "cfg-key-1");
    assert_eq!(got.origin, ApiKeyOrigin::Config);
    assert_eq!(got.description, "key cfg-id");
    assert_eq!(got.created_at, 50);

    // Upsert replaces key, origin and description, but keeps the first creation time.
    let mut replaced = api_key("cfg-id", "cfg-key-2", ApiKeyOrigin::Created, 999);
    replaced.description = "rotated".to_owned();
    store.upsert_api_key(&replaced).await.unwrap();
    let got = store.api_key("cfg-id").await.unwrap().unwrap();
    assert_eq!(got.secret_key.expose_secret(), "cfg-key-2");
    assert_eq!(got.origin, ApiKeyOrigin::Created);
    assert_eq!(got.description, "rotated");
    assert_eq!(got.created_at, 50);
    // Secret ids are exact.
    assert!(store.api_key("CFG-ID").await.unwrap().is_none());

    store
        .upsert_api_key(&api_key(
            "gen-late",
            "gen-key-2",
            ApiKeyOrigin::Generated,
            300,
        ))
        .await
        .unwrap();
    store
        .upsert_api_key(&api_key(
            "gen-early",
            "gen-key-1",
            ApiKeyOrigin::Generated,
            200,
        ))
        .await
        .unwrap();
    let generated = store.generated_api_key().await.unwrap().unwrap();
    assert_eq!(generated.secret_id, "gen-early", "the oldest generated key");
    assert_eq!(generated.secret_key.expose_secret(), "gen-key-1");
    assert_eq!(generated.origin, ApiKeyOrigin::Generated);
}

pub(crate) async fn debug_hides_secrets(store: &dyn Store) {
    const PRODUCT_SECRET: &str = "product-secret-e4c1a9";
    const CA_KEY: &str = "ca-private-key-77b3d0";
    const PSK: &str = "ZGV2aWNlLXBzay0zZjll";
    const API_SECRET: &str = "api-secret-key-9d02c6";

    let mut p = product("SECRPROD01", "secrets", 1);
    p.secret = secret(PRODUCT_SECRET);
    p.encryption = EncryptionType::Certificate;
    p.ca = Some(CaRecord {
        cert_pem: "public cert".to_owned(),
        key_pem: secret(CA_KEY),
    });
    let mut d = device("SECRPROD01", "vault", 1);
    d.psk = Some(secret(PSK));
    let k = api_key("secret-id", API_SECRET, ApiKeyOrigin::Generated, 1);
    store.insert_product(&p).await.unwrap();
    store.insert_device(&d).await.unwrap();
    store.upsert_api_key(&k).await.unwrap();

    let secrets = [PRODUCT_SECRET, CA_KEY, PSK, API_SECRET];
    let assert_hidden = |printed: String| {
        for value in secrets {
            assert!(!printed.contains(value), "Debug shows a secret: {printed}");
        }
    };
    assert_hidden(format!("{p:?} {d:?} {k:?}"));
    assert_hidden(format!("{p:#?} {d:#?} {k:#?}"));

    let stored_p = store.product(&p.id).await.unwrap().unwrap();
    let stored_d = store.device(&d.product_id, &d.name).await.unwrap().unwrap();
    let stored_k = store.api_key("secret-id").await.unwrap().unwrap();
    let generated = store.generated_api_key().await.unwrap().unwrap();
    let products = store.list_products(ALL).await.unwrap();
    let devices = store
        .list_devices(&p.id, &DeviceFilter::default(), ALL)
        .await
        .unwrap();
    assert_hidden(format!(
        "{stored_p:?} {stored_d:?} {stored_k:?} {generated:?} {products:?} {devices:?}"
    ));
    // The records do hold the secrets (so the check above is not vacuous).
    assert_eq!(stored_p.secret.expose_secret(), PRODUCT_SECRET);
    assert_eq!(stored_p.ca.unwrap().key_pem.expose_secret(), CA_KEY);
    assert_eq!(stored_d.psk.unwrap().expose_secret(), PSK);
    assert_eq!(stored_k.secret_key.expose_secret(), API_SECRET);
    // Nor does the store itself print anything secret (such as a connection password).
    assert_hidden(format!("{store:?}"));
}
