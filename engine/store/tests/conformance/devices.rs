//! Checks: devices, their filters, enable state, PSKs and connection state.

use eddy_core::secret::ExposeSecret;
use eddy_store::{DeviceFilter, DeviceRecord, OnlineState, Store};

use crate::fixtures::*;

pub(crate) async fn devices_crud(store: &dyn Store) {
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

pub(crate) async fn device_conflicts(store: &dyn Store) {
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

pub(crate) async fn device_filters_and_pagination(store: &dyn Store) {
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

pub(crate) async fn set_devices_enabled(store: &dyn Store) {
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

pub(crate) async fn device_psk_and_reset(store: &dyn Store) {
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

pub(crate) async fn connection_state(store: &dyn Store) {
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
