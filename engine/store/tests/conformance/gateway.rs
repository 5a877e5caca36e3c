//! Checks: gateway bindings (one gateway per sub-device, the per-gateway limit).

use eddy_core::DeviceId;
use eddy_store::{Bound, Store};

use crate::fixtures::*;

fn id(product: &str, name: &str) -> DeviceId {
    DeviceId::new(pid(product), dn(name))
}

pub(crate) async fn gateway_bindings(store: &dyn Store) {
    for (id, name) in [("GATEWAYP01", "gateways"), ("SUBPROD001", "subs")] {
        store.insert_product(&product(id, name, 100)).await.unwrap();
    }
    for (product_id, name) in [
        ("GATEWAYP01", "gw1"),
        ("GATEWAYP01", "gw2"),
        ("SUBPROD001", "s1"),
        ("SUBPROD001", "s2"),
        ("SUBPROD001", "s3"),
    ] {
        store
            .insert_device(&device(product_id, name, 100))
            .await
            .unwrap();
    }
    let (gw1, gw2) = (id("GATEWAYP01", "gw1"), id("GATEWAYP01", "gw2"));
    let (s1, s2, s3) = (
        id("SUBPROD001", "s1"),
        id("SUBPROD001", "s2"),
        id("SUBPROD001", "s3"),
    );
    assert_eq!(
        store.bind_sub_device(&gw1, &s1, 2, 500).await.unwrap(),
        Bound::Done
    );
    assert_eq!(
        store.bind_sub_device(&gw1, &s1, 2, 500).await.unwrap(),
        Bound::Done,
        "again"
    );
    assert_eq!(
        store.bind_sub_device(&gw2, &s1, 2, 500).await.unwrap(),
        Bound::Elsewhere(gw1.clone())
    );
    assert_eq!(
        store.bind_sub_device(&gw1, &s2, 2, 500).await.unwrap(),
        Bound::Done
    );
    assert_eq!(
        store.bind_sub_device(&gw1, &s3, 2, 500).await.unwrap(),
        Bound::LimitReached
    );
    assert_eq!(
        store
            .bind_sub_device(&gw1, &id("SUBPROD001", "nobody"), 9, 500)
            .await
            .unwrap(),
        Bound::NoDevice
    );
    assert_eq!(store.gateway_of(&s2).await.unwrap(), Some(gw1.clone()));
    assert_eq!(store.gateway_of(&s3).await.unwrap(), None);
    let listed = store.sub_devices(&gw1, None, page(0, 10)).await.unwrap();
    assert_eq!(
        (listed.total, listed.items),
        (2, vec![s1.clone(), s2.clone()])
    );
    assert_eq!(
        store
            .sub_devices(&gw1, Some(&pid("GATEWAYP01")), page(0, 10))
            .await
            .unwrap()
            .total,
        0
    );
    assert!(
        !store.unbind_sub_device(&gw2, &s1).await.unwrap(),
        "not its gateway"
    );
    assert!(store.unbind_sub_device(&gw1, &s1).await.unwrap());
    assert_eq!(
        store.bind_sub_device(&gw2, &s1, 2, 500).await.unwrap(),
        Bound::Done
    );
    // Deleting a device deletes its bindings, as a gateway or as a sub-device.
    assert!(
        store
            .delete_device(&s2.product_id, &s2.device_name)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .sub_devices(&gw1, None, page(0, 10))
            .await
            .unwrap()
            .total,
        0
    );
    assert!(
        store
            .delete_device(&gw2.product_id, &gw2.device_name)
            .await
            .unwrap()
    );
    assert_eq!(store.gateway_of(&s1).await.unwrap(), None);
}
