//! Records, pages and assertions the checks share.

use std::time::Duration;

use eddy_core::secret::{ExposeSecret, secret};
use eddy_core::{DeviceName, EncryptionType, ProductId, ProductName};
use eddy_store::{
    ApiKeyOrigin, ApiKeyRecord, DeviceFilter, DeviceRecord, Page, ProductRecord, Store, StoreError,
    TopicPolicyRecord,
};

/// Generous bound for one check; only a hung lock or a dead server gets near it.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound for creating or dropping a test database.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const PG_URL_VAR: &str = "EDDY_TEST_POSTGRES_URL";

pub(crate) fn pid(value: &str) -> ProductId {
    ProductId::parse(value).unwrap()
}

pub(crate) fn dn(value: &str) -> DeviceName {
    DeviceName::parse(value).unwrap()
}

pub(crate) fn product(id: &str, name: &str, created_at: i64) -> ProductRecord {
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

pub(crate) fn device(product_id: &str, name: &str, created_at: i64) -> DeviceRecord {
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

pub(crate) fn policy(product_id: &str, suffix: &str, privilege: i64) -> TopicPolicyRecord {
    TopicPolicyRecord {
        product_id: pid(product_id),
        suffix: suffix.to_owned(),
        privilege,
        created_at: 1_000,
        updated_at: 1_000,
    }
}

pub(crate) fn api_key(id: &str, key: &str, origin: ApiKeyOrigin, created_at: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        secret_id: id.to_owned(),
        secret_key: secret(key),
        origin,
        description: format!("key {id}"),
        created_at,
    }
}

pub(crate) fn page(offset: u64, limit: u64) -> Page {
    Page { offset, limit }
}

pub(crate) const ALL: Page = Page {
    offset: 0,
    limit: 1_000,
};

pub(crate) fn assert_product_eq(got: &ProductRecord, want: &ProductRecord) {
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

pub(crate) fn assert_device_eq(got: &DeviceRecord, want: &DeviceRecord) {
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

pub(crate) fn product_ids(items: &[ProductRecord]) -> Vec<&str> {
    items.iter().map(|p| p.id.as_str()).collect()
}

pub(crate) fn device_names(items: &[DeviceRecord]) -> Vec<&str> {
    items.iter().map(|d| d.name.as_str()).collect()
}

pub(crate) fn assert_conflict(result: eddy_store::Result<()>, want: &str) {
    match result {
        Err(StoreError::Conflict { what }) => assert_eq!(what, want),
        other => panic!("expected Conflict {{ what: {want:?} }}, got {other:?}"),
    }
}

/// A constraint failure that is not a uniqueness clash must not pass for one.
pub(crate) fn assert_error_not_conflict<T: std::fmt::Debug>(result: eddy_store::Result<T>) {
    match result {
        Err(StoreError::Conflict { what }) => panic!("expected a non-conflict error: {what}"),
        Err(_) => {}
        Ok(value) => panic!("expected an error, got Ok({value:?})"),
    }
}

pub(crate) async fn devices_matching(
    store: &dyn Store,
    product: &str,
    filter: &DeviceFilter,
) -> Vec<String> {
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

pub(crate) fn name_contains(value: &str) -> DeviceFilter {
    DeviceFilter {
        name_contains: Some(value.to_owned()),
        ..DeviceFilter::default()
    }
}
