//! One behaviour, two backends: every check here runs against [`SqliteStore`] (a temp file)
//! and against [`PgStore`] (a real PostgreSQL server), so the two cannot drift apart.
//!
//! PostgreSQL comes from `EDDY_TEST_POSTGRES_URL`, an admin URL such as the one
//! `scripts/start-postgres.sh` prints. Each test creates its own database there (and drops
//! it afterwards, best-effort), so repeated and parallel runs never see each other's rows.
//! Without the variable the PostgreSQL tests say they were skipped, except under `CI=true`,
//! where they fail: a CI run that silently tested one backend would prove nothing.
//!
//! The test databases use an ICU `en-US` collation when the server offers it, because a
//! linguistic default collation is what most production servers have and it sorts `a`
//! before `B`; the store must still list in SQLite's bytewise order.

// This whole file is test code, but clippy only treats `#[test]` functions and
// `#[cfg(test)]` modules as such, not the helpers and checks the tests share.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use eddy_core::secret::{ExposeSecret, secret};
use eddy_core::{DeviceName, EncryptionType, ProductId, ProductName};
use eddy_store::{
    ApiKeyOrigin, ApiKeyRecord, CaRecord, DeleteProduct, DeviceFilter, DeviceRecord, OnlineState,
    Page, PgStore, ProductRecord, SqliteStore, Store, StoreError, TopicPolicyRecord,
};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// Generous bound for one check; only a hung lock or a dead server gets near it.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound for creating or dropping a test database.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
const PG_URL_VAR: &str = "EDDY_TEST_POSTGRES_URL";

// ---------------------------------------------------------------------------------------
// Fixtures.

fn pid(value: &str) -> ProductId {
    ProductId::parse(value).unwrap()
}

fn dn(value: &str) -> DeviceName {
    DeviceName::parse(value).unwrap()
}

fn product(id: &str, name: &str, created_at: i64) -> ProductRecord {
    ProductRecord {
        id: pid(id),
        name: ProductName::parse(name).unwrap(),
        description: format!("description of {name}"),
        encryption: EncryptionType::Psk,
        product_type: 0,
        format: "json".to_owned(),
        region: "ap-guangzhou".to_owned(),
        register_type: 0,
        register_limit: 0,
        secret: secret(format!("product-secret-{id}")),
        ca: None,
        created_at,
    }
}

fn device(product_id: &str, name: &str, created_at: i64) -> DeviceRecord {
    DeviceRecord {
        product_id: pid(product_id),
        name: dn(name),
        psk: Some(secret(format!("psk-{product_id}-{name}"))),
        cert_pem: None,
        enabled: true,
        online: false,
        first_online_at: None,
        login_at: None,
        last_offline_at: None,
        client_ip: None,
        log_level: 0,
        firmware_version: String::new(),
        created_at,
        updated_at: created_at,
    }
}

fn policy(product_id: &str, suffix: &str, privilege: i64) -> TopicPolicyRecord {
    TopicPolicyRecord {
        product_id: pid(product_id),
        suffix: suffix.to_owned(),
        privilege,
        created_at: 1_000,
        updated_at: 1_000,
    }
}

fn api_key(id: &str, key: &str, origin: ApiKeyOrigin, created_at: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        secret_id: id.to_owned(),
        secret_key: secret(key),
        origin,
        description: format!("key {id}"),
        created_at,
    }
}

fn page(offset: u64, limit: u64) -> Page {
    Page { offset, limit }
}

const ALL: Page = Page {
    offset: 0,
    limit: 1_000,
};

fn assert_product_eq(got: &ProductRecord, want: &ProductRecord) {
    assert_eq!(got.id, want.id);
    assert_eq!(got.name, want.name);
    assert_eq!(got.description, want.description);
    assert_eq!(got.encryption, want.encryption);
    assert_eq!(got.product_type, want.product_type);
    assert_eq!(got.format, want.format);
    assert_eq!(got.region, want.region);
    assert_eq!(got.register_type, want.register_type);
    assert_eq!(got.register_limit, want.register_limit);
    assert_eq!(got.secret.expose_secret(), want.secret.expose_secret());
    match (&got.ca, &want.ca) {
        (None, None) => {}
        (Some(g), Some(w)) => {
            assert_eq!(g.cert_pem, w.cert_pem);
            assert_eq!(g.key_pem.expose_secret(), w.key_pem.expose_secret());
        }
        (g, w) => panic!("CA differs: got {g:?}, want {w:?}"),
    }
    assert_eq!(got.created_at, want.created_at);
}

fn assert_device_eq(got: &DeviceRecord, want: &DeviceRecord) {
    assert_eq!(got.product_id, want.product_id);
    assert_eq!(got.name, want.name);
    assert_eq!(
        got.psk.as_ref().map(|p| p.expose_secret().to_owned()),
        want.psk.as_ref().map(|p| p.expose_secret().to_owned())
    );
    assert_eq!(got.cert_pem, want.cert_pem);
    assert_eq!(got.enabled, want.enabled);
    assert_eq!(got.online, want.online);
    assert_eq!(got.first_online_at, want.first_online_at);
    assert_eq!(got.login_at, want.login_at);
    assert_eq!(got.last_offline_at, want.last_offline_at);
    assert_eq!(got.client_ip, want.client_ip);
    assert_eq!(got.log_level, want.log_level);
    assert_eq!(got.firmware_version, want.firmware_version);
    assert_eq!(got.created_at, want.created_at);
    assert_eq!(got.updated_at, want.updated_at);
}

fn product_ids(items: &[ProductRecord]) -> Vec<&str> {
    items.iter().map(|p| p.id.as_str()).collect()
}

fn device_names(items: &[DeviceRecord]) -> Vec<&str> {
    items.iter().map(|d| d.name.as_str()).collect()
}

fn assert_conflict(result: eddy_store::Result<()>, want: &str) {
    match result {
        Err(StoreError::Conflict { what }) => assert_eq!(what, want),
        other => panic!("expected Conflict {{ what: {want:?} }}, got {other:?}"),
    }
}

/// A constraint failure that is not a uniqueness clash must not pass for one.
fn assert_error_not_conflict<T: std::fmt::Debug>(result: eddy_store::Result<T>) {
    match result {
        Err(StoreError::Conflict { what }) => panic!("expected a non-conflict error: {what}"),
        Err(_) => {}
        Ok(value) => panic!("expected an error, got Ok({value:?})"),
    }
}

async fn devices_matching(store: &dyn Store, product: &str, filter: &DeviceFilter) -> Vec<String> {
    let listed = store
        .list_devices(&pid(product), filter, ALL)
        .await
        .unwrap();
    let names: Vec<String> = listed.items.iter().map(|d| d.name.to_string()).collect();
    assert_eq!(
        listed.total,
        names.len() as u64,
        "total vs items for {filter:?}"
    );
    names
}

fn name_contains(value: &str) -> DeviceFilter {
    DeviceFilter {
        name_contains: Some(value.to_owned()),
        ..DeviceFilter::default()
    }
}

// ---------------------------------------------------------------------------------------
// The checks. Each gets an empty, migrated store.

async fn schema_version(store: &dyn Store) {
    let version = store.schema_version().await.unwrap();
    assert!(version >= 1, "schema version {version}");
}

async fn products_crud(store: &dyn Store) {
    let psk = product("PSKPROD001", "psk-product", 100);
    store.insert_product(&psk).await.unwrap();

    let mut cert = product("CERTPROD01", "cert-product", 200);
    cert.encryption = EncryptionType::Certificate;
    cert.product_type = 5;
    cert.format = "custom".to_owned();
    cert.register_type = 2;
    cert.register_limit = 50;
    cert.description = "unicode: 温度传感器 ✓".to_owned();
    cert.ca = Some(CaRecord {
        cert_pem: "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n".to_owned(),
        key_pem: secret("-----BEGIN PRIVATE KEY-----\nca-key\n-----END PRIVATE KEY-----\n"),
    });
    store.insert_product(&cert).await.unwrap();

    assert_product_eq(&store.product(&psk.id).await.unwrap().unwrap(), &psk);
    assert_product_eq(&store.product(&cert.id).await.unwrap().unwrap(), &cert);
    assert!(store.product(&pid("NOSUCHPROD")).await.unwrap().is_none());

    assert!(
        store
            .update_product_registration(&psk.id, 1, 10)
            .await
            .unwrap()
    );
    let updated = store.product(&psk.id).await.unwrap().unwrap();
    assert_eq!((updated.register_type, updated.register_limit), (1, 10));
    assert_eq!(
        updated.name, psk.name,
        "registration update touches nothing else"
    );
    assert!(
        !store
            .update_product_registration(&pid("NOSUCHPROD"), 1, 10)
            .await
            .unwrap()
    );
    // The CHECK constraint on register_type is kept.
    assert_error_not_conflict(store.update_product_registration(&psk.id, 7, 0).await);

    assert_eq!(
        store.delete_product(&psk.id).await.unwrap(),
        DeleteProduct::Deleted
    );
    assert!(store.product(&psk.id).await.unwrap().is_none());
    assert_eq!(
        store.delete_product(&psk.id).await.unwrap(),
        DeleteProduct::NotFound
    );
    assert!(store.product(&cert.id).await.unwrap().is_some());
}

async fn product_conflicts(store: &dyn Store) {
    store
        .insert_product(&product("PROD000001", "taken", 1))
        .await
        .unwrap();
    assert_conflict(
        store
            .insert_product(&product("PROD000002", "taken", 1))
            .await,
        "product name",
    );
    assert_conflict(
        store
            .insert_product(&product("PROD000001", "other-name", 1))
            .await,
        "product id",
    );
    // Names are compared exactly, as SQLite's BINARY collation does.
    store
        .insert_product(&product("PROD000003", "TAKEN", 1))
        .await
        .unwrap();
    // The failed inserts left nothing behind.
    let listed = store.list_products(ALL).await.unwrap();
    assert_eq!(product_ids(&listed.items), ["PROD000001", "PROD000003"]);
}

async fn product_pagination(store: &dyn Store) {
    // Listing is by created_at, ties in insertion order (not by id).
    for (id, created_at) in [
        ("PAGE000005", 30),
        ("PAGE000002", 10),
        ("PAGE000004", 20),
        ("PAGE000001", 10),
        ("PAGE000003", 20),
    ] {
        let name = format!("p-{}", id.to_lowercase());
        store
            .insert_product(&product(id, &name, created_at))
            .await
            .unwrap();
    }
    let all = store.list_products(ALL).await.unwrap();
    assert_eq!(all.total, 5);
    assert_eq!(
        product_ids(&all.items),
        [
            "PAGE000002",
            "PAGE000001",
            "PAGE000004",
            "PAGE000003",
            "PAGE000005"
        ]
    );

    let first = store.list_products(page(0, 2)).await.unwrap();
    assert_eq!(first.total, 5);
    assert_eq!(product_ids(&first.items), ["PAGE000002", "PAGE000001"]);
    let middle = store.list_products(page(2, 2)).await.unwrap();
    assert_eq!(middle.total, 5);
    assert_eq!(product_ids(&middle.items), ["PAGE000004", "PAGE000003"]);
    let last = store.list_products(page(4, 2)).await.unwrap();
    assert_eq!(product_ids(&last.items), ["PAGE000005"]);
    let beyond = store.list_products(page(10, 2)).await.unwrap();
    assert_eq!(beyond.total, 5);
    assert!(beyond.items.is_empty());
    let none = store.list_products(page(0, 0)).await.unwrap();
    assert_eq!(none.total, 5);
    assert!(none.items.is_empty());
    // Limits beyond i64 are clamped, not an error.
    let huge = store.list_products(page(1, u64::MAX)).await.unwrap();
    assert_eq!(huge.items.len(), 4);
}

async fn devices_crud(store: &dyn Store) {
    store
        .insert_product(&product("DEVPROD001", "devices", 1))
        .await
        .unwrap();
    let plain = device("DEVPROD001", "sensor-1", 100);
    store.insert_device(&plain).await.unwrap();

    let mut full = device("DEVPROD001", "gw:main_01", 200);
    full.psk = None;
    full.cert_pem = Some("-----BEGIN CERTIFICATE-----\ndev\n-----END CERTIFICATE-----\n".into());
    full.enabled = false;
    full.online = true;
    full.first_online_at = Some(150);
    full.login_at = Some(190);
    full.last_offline_at = Some(180);
    full.client_ip = Some("192.0.2.7".to_owned());
    full.log_level = 3;
    full.firmware_version = "1.2.3".to_owned();
    full.updated_at = 210;
    store.insert_device(&full).await.unwrap();

    let got = store
        .device(&plain.product_id, &plain.name)
        .await
        .unwrap()
        .unwrap();
    assert_device_eq(&got, &plain);
    assert_eq!(got.online_state(), OnlineState::Inactive);
    let got = store
        .device(&full.product_id, &full.name)
        .await
        .unwrap()
        .unwrap();
    assert_device_eq(&got, &full);
    assert_eq!(got.online_state(), OnlineState::Online);

    assert!(
        store
            .device(&plain.product_id, &dn("missing"))
            .await
            .unwrap()
            .is_none()
    );
    // Device names are exact: case matters for lookups.
    assert!(
        store
            .device(&plain.product_id, &dn("SENSOR-1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .device(&pid("NOSUCHPROD"), &plain.name)
            .await
            .unwrap()
            .is_none()
    );

    // A device needs its product; that is an error, but no uniqueness clash.
    assert_error_not_conflict(
        store
            .insert_device(&device("NOSUCHPROD", "orphan", 1))
            .await,
    );

    assert!(
        store
            .delete_device(&plain.product_id, &plain.name)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_device(&plain.product_id, &plain.name)
            .await
            .unwrap()
    );
    assert!(
        store
            .device(&plain.product_id, &plain.name)
            .await
            .unwrap()
            .is_none()
    );
    let listed = store
        .list_devices(&plain.product_id, &DeviceFilter::default(), ALL)
        .await
        .unwrap();
    assert_eq!(listed.total, 1);
    assert_eq!(device_names(&listed.items), ["gw:main_01"]);
}

async fn device_conflicts(store: &dyn Store) {
    store
        .insert_product(&product("CONFPROD01", "conf-1", 1))
        .await
        .unwrap();
    store
        .insert_product(&product("CONFPROD02", "conf-2", 1))
        .await
        .unwrap();
    store
        .insert_device(&device("CONFPROD01", "dup", 1))
        .await
        .unwrap();
    assert_conflict(
        store.insert_device(&device("CONFPROD01", "dup", 2)).await,
        "device",
    );
    // Unique within a product only, and case-sensitive.
    store
        .insert_device(&device("CONFPROD02", "dup", 1))
        .await
        .unwrap();
    store
        .insert_device(&device("CONFPROD01", "DUP", 1))
        .await
        .unwrap();
    let kept = store
        .device(&pid("CONFPROD01"), &dn("dup"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.created_at, 1, "the clashing insert changed nothing");
}

async fn device_filters_and_pagination(store: &dyn Store) {
    store
        .insert_product(&product("FILTPROD01", "filters", 1))
        .await
        .unwrap();
    store
        .insert_product(&product("FILTPROD02", "filters-other", 1))
        .await
        .unwrap();
    // (name, created_at, enabled, firmware)
    let rows = [
        ("dev_1", 10, true, "1.0"),
        ("devX1", 10, false, ""),
        ("DEV_3", 10, true, ""),
        ("dev-2", 5, false, "1.0"),
        ("other", 20, true, "2.0"),
    ];
    for (name, created_at, enabled, firmware) in rows {
        let mut d = device("FILTPROD01", name, created_at);
        d.enabled = enabled;
        d.firmware_version = firmware.to_owned();
        store.insert_device(&d).await.unwrap();
    }
    store
        .insert_device(&device("FILTPROD02", "dev_1", 1))
        .await
        .unwrap();

    // Order: created_at, ties in insertion order (not by name).
    assert_eq!(
        devices_matching(store, "FILTPROD01", &DeviceFilter::default()).await,
        ["dev-2", "dev_1", "devX1", "DEV_3", "other"]
    );

    // `_` and `%` are literal characters, not wildcards.
    assert_eq!(
        devices_matching(store, "FILTPROD01", &name_contains("_")).await,
        ["dev_1", "DEV_3"]
    );
    assert_eq!(
        devices_matching(store, "FILTPROD01", &name_contains("v_1")).await,
        ["dev_1"]
    );
    assert!(
        devices_matching(store, "FILTPROD01", &name_contains("%"))
            .await
            .is_empty()
    );
    assert!(
        devices_matching(store, "FILTPROD01", &name_contains("d%1"))
            .await
            .is_empty()
    );
    assert!(
        devices_matching(store, "FILTPROD01", &name_contains("\\"))
            .await
            .is_empty()
    );
    // Contains, not prefix; ASCII case is folded like SQLite's LIKE.
    assert_eq!(
        devices_matching(store, "FILTPROD01", &name_contains("X1")).await,
        ["devX1"]
    );
    assert_eq!(
        devices_matching(store, "FILTPROD01", &name_contains("thE")).await,
        ["other"]
    );
    assert_eq!(
        devices_matching(store, "FILTPROD01", &name_contains("dev")).await,
        ["dev-2", "dev_1", "devX1", "DEV_3"]
    );
    // Non-ASCII is matched exactly (and no device name can contain it).
    assert!(
        devices_matching(store, "FILTPROD01", &name_contains("é"))
            .await
            .is_empty()
    );
    assert_eq!(
        devices_matching(store, "FILTPROD01", &name_contains(""))
            .await
            .len(),
        5
    );

    let enabled = |value| DeviceFilter {
        enabled: Some(value),
        ..DeviceFilter::default()
    };
    assert_eq!(
        devices_matching(store, "FILTPROD01", &enabled(true)).await,
        ["dev_1", "DEV_3", "other"]
    );
    assert_eq!(
        devices_matching(store, "FILTPROD01", &enabled(false)).await,
        ["dev-2", "devX1"]
    );

    let firmware = |value: &str| DeviceFilter {
        firmware_version: Some(value.to_owned()),
        ..DeviceFilter::default()
    };
    assert_eq!(
        devices_matching(store, "FILTPROD01", &firmware("1.0")).await,
        ["dev-2", "dev_1"]
    );
    assert_eq!(
        devices_matching(store, "FILTPROD01", &firmware("")).await,
        ["devX1", "DEV_3"]
    );
    assert!(
        devices_matching(store, "FILTPROD01", &firmware("9.9"))
            .await
            .is_empty()
    );

    let combined = DeviceFilter {
        name_contains: Some("dev".to_owned()),
        enabled: Some(true),
        firmware_version: Some("1.0".to_owned()),
    };
    assert_eq!(
        devices_matching(store, "FILTPROD01", &combined).await,
        ["dev_1"]
    );
    assert_eq!(
        devices_matching(store, "FILTPROD02", &combined).await,
        Vec::<String>::new(),
        "the other product's dev_1 has no firmware 1.0"
    );
    assert!(
        devices_matching(store, "NOSUCHPROD", &DeviceFilter::default())
            .await
            .is_empty()
    );

    // Totals count every match, whatever the page.
    let filter = name_contains("dev");
    let product = pid("FILTPROD01");
    let first = store
        .list_devices(&product, &filter, page(0, 3))
        .await
        .unwrap();
    assert_eq!(first.total, 4);
    assert_eq!(device_names(&first.items), ["dev-2", "dev_1", "devX1"]);
    let second = store
        .list_devices(&product, &filter, page(3, 3))
        .await
        .unwrap();
    assert_eq!(second.total, 4);
    assert_eq!(device_names(&second.items), ["DEV_3"]);
    let beyond = store
        .list_devices(&product, &filter, page(9, 3))
        .await
        .unwrap();
    assert_eq!(beyond.total, 4);
    assert!(beyond.items.is_empty());

    // Deleted and created again, a device goes after the others of its created_at.
    assert!(store.delete_device(&product, &dn("dev_1")).await.unwrap());
    store
        .insert_device(&device("FILTPROD01", "dev_1", 10))
        .await
        .unwrap();
    assert_eq!(
        devices_matching(store, "FILTPROD01", &DeviceFilter::default()).await,
        ["dev-2", "devX1", "DEV_3", "dev_1", "other"]
    );
}

async fn set_devices_enabled(store: &dyn Store) {
    store
        .insert_product(&product("ENABPROD01", "enable", 1))
        .await
        .unwrap();
    store
        .insert_product(&product("ENABPROD02", "enable-other", 1))
        .await
        .unwrap();
    for name in ["a", "b", "c"] {
        store
            .insert_device(&device("ENABPROD01", name, 1))
            .await
            .unwrap();
    }
    store
        .insert_device(&device("ENABPROD02", "a", 1))
        .await
        .unwrap();
    let p1 = pid("ENABPROD01");
    let enabled_of = |name: &'static str| {
        let p1 = p1.clone();
        async move { store.device(&p1, &dn(name)).await.unwrap().unwrap().enabled }
    };

    let missing = store
        .set_devices_enabled(&p1, &[dn("a"), dn("b")], false)
        .await
        .unwrap();
    assert!(missing.is_empty(), "{missing:?}");
    assert!(!enabled_of("a").await);
    assert!(!enabled_of("b").await);
    assert!(enabled_of("c").await);
    let other = store
        .device(&pid("ENABPROD02"), &dn("a"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        other.enabled,
        "another product's device of the same name is untouched"
    );
    let a = store.device(&p1, &dn("a")).await.unwrap().unwrap();
    assert!(a.updated_at >= 1, "updated_at moves with the change");

    // All or nothing: two unknown names, reported in the order given; nothing changes.
    let missing = store
        .set_devices_enabled(&p1, &[dn("x"), dn("a"), dn("c"), dn("y")], true)
        .await
        .unwrap();
    assert_eq!(missing, [dn("x"), dn("y")]);
    assert!(!enabled_of("a").await);
    assert!(enabled_of("c").await);
    let missing = store
        .set_devices_enabled(&p1, &[dn("c")], false)
        .await
        .unwrap();
    assert!(missing.is_empty());
    assert!(!enabled_of("c").await);

    // A name from another product does not exist here.
    store
        .insert_device(&device("ENABPROD02", "only-there", 1))
        .await
        .unwrap();
    let missing = store
        .set_devices_enabled(&p1, &[dn("a"), dn("only-there")], true)
        .await
        .unwrap();
    assert_eq!(missing, [dn("only-there")]);
    assert!(!enabled_of("a").await);

    // Repeating a name is harmless; an empty list changes nothing and reports nothing.
    let missing = store
        .set_devices_enabled(&p1, &[dn("a"), dn("a"), dn("b")], true)
        .await
        .unwrap();
    assert!(missing.is_empty());
    assert!(enabled_of("a").await);
    assert!(enabled_of("b").await);
    assert!(
        store
            .set_devices_enabled(&p1, &[], false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(enabled_of("a").await);
}

async fn device_psk_and_reset(store: &dyn Store) {
    store
        .insert_product(&product("STATPROD01", "state", 1))
        .await
        .unwrap();
    let mut d = device("STATPROD01", "lamp", 100);
    d.online = true;
    d.first_online_at = Some(110);
    d.login_at = Some(120);
    d.last_offline_at = Some(115);
    d.client_ip = Some("198.51.100.3".to_owned());
    d.enabled = false;
    d.firmware_version = "3.1".to_owned();
    d.log_level = 2;
    store.insert_device(&d).await.unwrap();

    assert!(
        store
            .update_device_psk(&d.product_id, &d.name, "bmV3LXBzaw==")
            .await
            .unwrap()
    );
    let got = store.device(&d.product_id, &d.name).await.unwrap().unwrap();
    assert_eq!(got.psk.unwrap().expose_secret(), "bmV3LXBzaw==");
    assert!(got.updated_at >= d.updated_at);
    assert!(got.online, "a new PSK does not disconnect the record");
    assert!(
        !store
            .update_device_psk(&d.product_id, &dn("missing"), "eA==")
            .await
            .unwrap()
    );

    assert!(
        store
            .reset_device_state(&d.product_id, &d.name)
            .await
            .unwrap()
    );
    let got = store.device(&d.product_id, &d.name).await.unwrap().unwrap();
    assert!(!got.online);
    assert_eq!(got.first_online_at, None);
    assert_eq!(got.login_at, None);
    assert_eq!(got.last_offline_at, None);
    assert_eq!(got.client_ip, None);
    assert_eq!(got.online_state(), OnlineState::Inactive);
    // Everything else survives a reset.
    assert!(!got.enabled);
    assert_eq!(got.firmware_version, "3.1");
    assert_eq!(got.log_level, 2);
    assert_eq!(got.created_at, 100);
    assert_eq!(got.psk.unwrap().expose_secret(), "bmV3LXBzaw==");
    assert!(
        !store
            .reset_device_state(&d.product_id, &dn("missing"))
            .await
            .unwrap()
    );
}

async fn connection_state(store: &dyn Store) {
    store
        .insert_product(&product("CONNPROD01", "conn-state", 1))
        .await
        .unwrap();
    let d = device("CONNPROD01", "sensor", 100);
    store.insert_device(&d).await.unwrap();
    let state = |d: &DeviceRecord| d.online_state();
    let got = store.device(&d.product_id, &d.name).await.unwrap().unwrap();
    assert_eq!(state(&got), OnlineState::Inactive);

    assert!(
        store
            .device_connected(&d.product_id, &d.name, "192.0.2.7", 200)
            .await
            .unwrap()
    );
    let got = store.device(&d.product_id, &d.name).await.unwrap().unwrap();
    assert_eq!(state(&got), OnlineState::Online);
    assert_eq!(got.login_at, Some(200));
    assert_eq!(got.first_online_at, Some(200));
    assert_eq!(got.client_ip.as_deref(), Some("192.0.2.7"));

    assert!(
        store
            .device_disconnected(&d.product_id, &d.name, 250)
            .await
            .unwrap()
    );
    store
        .device_connected(&d.product_id, &d.name, "192.0.2.8", 300)
        .await
        .unwrap();
    store
        .device_disconnected(&d.product_id, &d.name, 350)
        .await
        .unwrap();
    let got = store.device(&d.product_id, &d.name).await.unwrap().unwrap();
    assert_eq!(state(&got), OnlineState::Offline);
    assert_eq!(
        got.first_online_at,
        Some(200),
        "the first connection is kept"
    );
    assert_eq!(got.login_at, Some(300));
    assert_eq!(got.last_offline_at, Some(350));
    assert_eq!(got.client_ip.as_deref(), Some("192.0.2.8"));
    assert!(
        !store
            .device_connected(&d.product_id, &dn("ghost"), "192.0.2.9", 400)
            .await
            .unwrap()
    );
}

async fn delete_product_with_devices(store: &dyn Store) {
    let id = pid("DELPROD001");
    store
        .insert_product(&product(id.as_str(), "delete-me", 1))
        .await
        .unwrap();
    store
        .insert_device(&device(id.as_str(), "last-one", 1))
        .await
        .unwrap();
    store
        .insert_topic_policy(&policy(id.as_str(), "data", 3))
        .await
        .unwrap();

    assert_eq!(
        store.delete_product(&id).await.unwrap(),
        DeleteProduct::HasDevices
    );
    assert!(
        store.product(&id).await.unwrap().is_some(),
        "nothing deleted"
    );
    assert_eq!(store.list_topic_policies(&id).await.unwrap().len(), 1);

    assert!(store.delete_device(&id, &dn("last-one")).await.unwrap());
    assert_eq!(
        store.delete_product(&id).await.unwrap(),
        DeleteProduct::Deleted
    );
    assert!(store.product(&id).await.unwrap().is_none());
    // Topic policies go with their product.
    assert!(store.list_topic_policies(&id).await.unwrap().is_empty());
    // The name is free again.
    store
        .insert_product(&product("DELPROD002", "delete-me", 2))
        .await
        .unwrap();
}

async fn topic_policies(store: &dyn Store) {
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

async fn api_keys(store: &dyn Store) {
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

async fn debug_hides_secrets(store: &dyn Store) {
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

// ---------------------------------------------------------------------------------------
// Backends.

async fn sqlite_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("eddy.db"))
        .await
        .unwrap();
    (dir, store)
}

/// Writes straight to the process's stderr, which libtest does not capture, so the line
/// shows in a plain `cargo test` run.
fn notice(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The admin URL, or `None` (after saying so once) when PostgreSQL tests are skipped.
fn postgres_admin_url() -> Option<String> {
    static SKIP_NOTICE: Once = Once::new();
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if in_ci() => panic!(
            "{PG_URL_VAR} is not set but CI=true: the PostgreSQL conformance tests must run \
             in CI. Start a server with scripts/start-postgres.sh and export the line it prints."
        ),
        _ => {
            SKIP_NOTICE.call_once(|| {
                notice(&format!(
                    "conformance: PostgreSQL tests skipped: set {PG_URL_VAR} \
                     (scripts/start-postgres.sh prints one)"
                ));
            });
            None
        }
    }
}

/// `url` with its database (the path) replaced by `database`, query string kept.
fn with_database(url: &str, database: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let path_start = head[authority_start..]
        .find('/')
        .map_or(head.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &head[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A database of its own for one test, on the server behind the admin URL.
struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates the database; `None` when PostgreSQL tests are skipped.
    async fn create() -> Option<Self> {
        let admin_url = postgres_admin_url()?;
        // Unique across parallel tests (counter), processes (pid) and runs (random bits
        // from the standard library's per-process hash seed plus the clock).
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        let name = format!(
            "eddy_test_{}_{}_{:016x}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            hasher.finish()
        );
        let mut admin = admin_connect(&admin_url).await;
        // ICU en-US sorts "a" before "B": the store's listings must not depend on that.
        let icu = format!(
            "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
        );
        if let Err(icu_err) = admin_sql(&mut admin, &icu).await {
            static FALLBACK_NOTICE: Once = Once::new();
            FALLBACK_NOTICE.call_once(|| {
                notice(&format!(
                    "conformance: server cannot create ICU en-US databases ({icu_err}); \
                     using its default collation"
                ));
            });
            admin_sql(&mut admin, &format!("CREATE DATABASE \"{name}\""))
                .await
                .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        }
        let _ = admin.close().await;
        Some(Self { admin_url, name })
    }

    fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }

    /// Best-effort: a leftover `eddy_test_*` database is harmless, so failures only warn
    /// (a panic here would hide the outcome of the check that ran before).
    async fn drop_database(self) {
        let warn = |e: &str| {
            notice(&format!(
                "conformance: could not drop test database {}: {e}",
                self.name
            ));
        };
        let mut admin = match try_admin_connect(&self.admin_url).await {
            Ok(admin) => admin,
            Err(e) => return warn(&e),
        };
        // FORCE: the store's pool may still be closing its connections.
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = admin_sql(&mut admin, &sql).await {
            warn(&e);
        }
        let _ = admin.close().await;
    }
}

async fn try_admin_connect(admin_url: &str) -> Result<PgConnection, String> {
    let options = PgConnectOptions::from_str(admin_url)
        .map_err(|e| format!("{PG_URL_VAR} is not a valid PostgreSQL URL: {e}"))?;
    match tokio::time::timeout(ADMIN_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!(
            "cannot connect to {PG_URL_VAR} (is scripts/start-postgres.sh running?): {e}"
        )),
        Err(_) => Err(format!("timed out connecting to {PG_URL_VAR}")),
    }
}

async fn admin_connect(admin_url: &str) -> PgConnection {
    try_admin_connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn admin_sql(admin: &mut PgConnection, sql: &str) -> Result<(), String> {
    match tokio::time::timeout(ADMIN_TIMEOUT, sqlx::raw_sql(sql).execute(&mut *admin)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {ADMIN_TIMEOUT:?}")),
    }
}

/// Runs `check` under [`CHECK_TIMEOUT`] in a task of its own, so that when it panics
/// `cleanup` still runs before the panic is passed on.
async fn run_check<F, C>(check: F, cleanup: C)
where
    F: Future<Output = ()> + Send + 'static,
    C: Future<Output = ()>,
{
    let outcome = tokio::spawn(tokio::time::timeout(CHECK_TIMEOUT, check)).await;
    cleanup.await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("check did not finish within {CHECK_TIMEOUT:?}"),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => panic!("check task failed: {join}"),
    }
}

/// One test per check and backend: `sqlite::<check>` and `postgres::<check>`.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let (dir, store) = super::sqlite_store().await;
                    super::run_check(async move { super::$check(&store).await }, async {
                        drop(dir);
                    })
                    .await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(db) = super::TestDatabase::create().await else {
                        return;
                    };
                    let store = match super::PgStore::connect(&db.url()).await {
                        Ok(store) => store,
                        Err(e) => {
                            let name = db.name.clone();
                            db.drop_database().await;
                            panic!("PgStore::connect to test database {name}: {e}");
                        }
                    };
                    super::run_check(
                        async move { super::$check(&store).await },
                        db.drop_database(),
                    )
                    .await;
                }
            )*
        }
    };
}

conformance!(
    schema_version,
    products_crud,
    product_conflicts,
    product_pagination,
    devices_crud,
    device_conflicts,
    device_filters_and_pagination,
    set_devices_enabled,
    device_psk_and_reset,
    connection_state,
    delete_product_with_devices,
    topic_policies,
    api_keys,
    debug_hides_secrets,
);

#[test]
fn with_database_replaces_only_the_path() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:55432/postgres", "x"),
        "postgres://postgres@127.0.0.1:55432/x"
    );
    assert_eq!(
        with_database(
            "postgres://u:p@h/db?sslmode=disable&application_name=a",
            "x"
        ),
        "postgres://u:p@h/x?sslmode=disable&application_name=a"
    );
    assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    assert_eq!(
        with_database("postgres://h?sslmode=disable", "x"),
        "postgres://h/x?sslmode=disable"
    );
}
