//! Checks: schema version and products.

use eddy_core::EncryptionType;
use eddy_core::secret::secret;
use eddy_store::{CaRecord, DeleteProduct, Store};

use crate::fixtures::*;

pub(crate) async fn schema_version(store: &dyn Store) {
    let version = store.schema_version().await.unwrap();
    assert!(version >= 1, "schema version {version}");
}

pub(crate) async fn products_crud(store: &dyn Store) {
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

pub(crate) async fn product_conflicts(store: &dyn Store) {
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

pub(crate) async fn product_pagination(store: &dyn Store) {
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

pub(crate) async fn delete_product_with_devices(store: &dyn Store) {
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
