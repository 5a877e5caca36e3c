//! Checks: device groups and their members.

use eddy_core::DeviceId;
use eddy_store::{GroupRecord, Store};

use crate::fixtures::*;

fn group(name: &str) -> GroupRecord {
    GroupRecord {
        name: name.to_owned(),
        description: format!("group {name}"),
        created_at: 100,
        devices: 0,
    }
}

pub(crate) async fn device_groups(store: &dyn Store) {
    store
        .insert_product(&product("GROUPPROD1", "group-product", 100))
        .await
        .unwrap();
    for name in ["d1", "d2", "d3"] {
        store
            .insert_device(&device("GROUPPROD1", name, 100))
            .await
            .unwrap();
    }
    let id = |name: &str| DeviceId::new(pid("GROUPPROD1"), dn(name));
    store.insert_group(&group("b-group")).await.unwrap();
    store.insert_group(&group("a-group")).await.unwrap();
    assert_conflict(store.insert_group(&group("a-group")).await, "device group");

    assert!(
        store
            .add_group_devices("a-group", &[id("d2"), id("d1")])
            .await
            .unwrap()
    );
    assert!(
        store
            .add_group_devices("a-group", &[id("d1")])
            .await
            .unwrap(),
        "kept once"
    );
    assert!(!store.add_group_devices("nope", &[id("d1")]).await.unwrap());
    let listed = store.list_groups(page(0, 10)).await.unwrap();
    let summary: Vec<(&str, i64)> = listed
        .items
        .iter()
        .map(|g| (g.name.as_str(), g.devices))
        .collect();
    assert_eq!(summary, [("a-group", 2), ("b-group", 0)]);
    assert_eq!(store.group("a-group").await.unwrap().unwrap().devices, 2);
    assert_eq!(store.group("nope").await.unwrap(), None);
    let members = store
        .group_devices("a-group", None, page(0, 10))
        .await
        .unwrap();
    assert_eq!(
        (members.total, members.items),
        (2, vec![id("d1"), id("d2")])
    );
    let none = store
        .group_devices("a-group", Some(&pid("OTHERPROD1")), page(0, 10))
        .await
        .unwrap();
    assert_eq!(none.total, 0);

    assert_eq!(
        store
            .remove_group_devices("a-group", &[id("d2"), id("d3")])
            .await
            .unwrap(),
        1
    );
    // A deleted device leaves its groups; a deleted group takes its memberships.
    assert!(
        store
            .delete_device(&pid("GROUPPROD1"), &dn("d1"))
            .await
            .unwrap()
    );
    assert_eq!(store.group("a-group").await.unwrap().unwrap().devices, 0);
    assert!(
        store
            .add_group_devices("b-group", &[id("d3")])
            .await
            .unwrap()
    );
    assert!(store.delete_group("b-group").await.unwrap());
    assert!(!store.delete_group("b-group").await.unwrap());
    assert_eq!(
        store
            .group_devices("b-group", None, page(0, 10))
            .await
            .unwrap()
            .total,
        0
    );
}
