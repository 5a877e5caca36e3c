//! Checks: device shadows (compare-and-set by version) and the device log level.

use eddy_store::{ShadowRecord, Store};

use crate::fixtures::*;

fn shadow(reported: &str, version: i64) -> ShadowRecord {
    ShadowRecord {
        product_id: pid("SHADOWPR01"),
        name: dn("d1"),
        reported: reported.to_owned(),
        desired: "{}".to_owned(),
        version,
        updated_at_ms: 1_700_000_000_000 + version,
    }
}

pub(crate) async fn shadows(store: &dyn Store) {
    store
        .insert_product(&product("SHADOWPR01", "shadow-product", 100))
        .await
        .unwrap();
    store
        .insert_device(&device("SHADOWPR01", "d1", 100))
        .await
        .unwrap();
    let (p, d) = (pid("SHADOWPR01"), dn("d1"));
    assert_eq!(store.shadow(&p, &d).await.unwrap(), None);

    // Version 0 means "none stored": the first write creates it, a second creator loses.
    let first = shadow(r#"{"t":1}"#, 1);
    assert!(store.put_shadow(&first, 0).await.unwrap());
    assert!(!store.put_shadow(&shadow(r#"{"t":9}"#, 1), 0).await.unwrap());
    assert_eq!(store.shadow(&p, &d).await.unwrap(), Some(first));

    // A write against a version that moved on changes nothing.
    let mut second = shadow(r#"{"t":2,"温度":"✓"}"#, 2);
    second.desired = r#"{"on":true}"#.to_owned();
    assert!(store.put_shadow(&second, 1).await.unwrap());
    assert!(!store.put_shadow(&shadow(r#"{"t":3}"#, 3), 1).await.unwrap());
    assert_eq!(store.shadow(&p, &d).await.unwrap(), Some(second));

    assert!(store.delete_shadow(&p, &d).await.unwrap());
    assert!(!store.delete_shadow(&p, &d).await.unwrap());
    assert_eq!(store.shadow(&p, &d).await.unwrap(), None);

    // A shadow goes with its device.
    assert!(store.put_shadow(&shadow("{}", 1), 0).await.unwrap());
    assert!(store.delete_device(&p, &d).await.unwrap());
    assert_eq!(store.shadow(&p, &d).await.unwrap(), None);
    // And cannot exist without one.
    assert_error_not_conflict(store.put_shadow(&shadow("{}", 1), 0).await);
}

pub(crate) async fn device_log_level(store: &dyn Store) {
    store
        .insert_product(&product("LOGLEVEL01", "log-product", 100))
        .await
        .unwrap();
    store
        .insert_device(&device("LOGLEVEL01", "d1", 100))
        .await
        .unwrap();
    let (p, d) = (pid("LOGLEVEL01"), dn("d1"));
    assert!(store.set_device_log_level(&p, &d, 4).await.unwrap());
    assert_eq!(store.device(&p, &d).await.unwrap().unwrap().log_level, 4);
    assert!(
        !store
            .set_device_log_level(&p, &dn("nobody"), 4)
            .await
            .unwrap()
    );
}
