//! Checks: firmware versions, update tasks and their devices.

use eddy_store::{
    FirmwareRecord, FirmwareTaskRecord, Store, StoreError, TaskDeviceFilter, TaskDeviceRecord,
};

use crate::fixtures::*;

fn fw(version: &str, created_at: i64) -> FirmwareRecord {
    FirmwareRecord {
        product_id: pid("FIRMWARE01"),
        version: version.to_owned(),
        name: format!("fw {version}"),
        description: String::new(),
        user_defined: "{}".to_owned(),
        md5: "0123456789abcdef0123456789abcdef".to_owned(),
        size: 1024,
        created_at,
    }
}

fn task(version: &str) -> FirmwareTaskRecord {
    FirmwareTaskRecord {
        task_id: 0,
        product_id: pid("FIRMWARE01"),
        version: version.to_owned(),
        original_version: String::new(),
        upgrade_mode: "devicenames".to_owned(),
        task_type: 1,
        timeout_secs: 3600,
        created_at: 500,
    }
}

fn entry(name: &str) -> TaskDeviceRecord {
    TaskDeviceRecord {
        task_id: 0,
        product_id: pid("FIRMWARE01"),
        device_name: dn(name),
        status: 1,
        percent: 0,
        retcode: 0,
        message: String::new(),
        ori_version: "1.0".to_owned(),
        updated_at: 500,
    }
}

pub(crate) async fn firmware_tasks(store: &dyn Store) {
    store
        .insert_product(&product("FIRMWARE01", "firmware-product", 100))
        .await
        .unwrap();
    for name in ["d1", "d2", "d3"] {
        store
            .insert_device(&device("FIRMWARE01", name, 100))
            .await
            .unwrap();
    }
    let p = pid("FIRMWARE01");

    // Firmware: unique per version, listed newest first, editable.
    store.insert_firmware(&fw("1.0", 100)).await.unwrap();
    store.insert_firmware(&fw("2.0", 200)).await.unwrap();
    assert_conflict(store.insert_firmware(&fw("2.0", 300)).await, "firmware");
    let listed = store.list_firmwares(Some(&p), page(0, 10)).await.unwrap();
    assert_eq!(listed.total, 2);
    let versions: Vec<&str> = listed.items.iter().map(|f| f.version.as_str()).collect();
    assert_eq!(versions, ["2.0", "1.0"]);
    assert_eq!(
        store
            .list_firmwares(None, page(1, 10))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let mut edited = fw("2.0", 200);
    edited.name = "renamed".to_owned();
    assert!(store.edit_firmware(&edited).await.unwrap());
    assert_eq!(store.firmware(&p, "2.0").await.unwrap(), Some(edited));
    assert_eq!(store.firmware(&p, "9.9").await.unwrap(), None);
    assert!(
        store
            .set_device_firmware_version(&p, &dn("d1"), "1.0", 600)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .device(&p, &dn("d1"))
            .await
            .unwrap()
            .unwrap()
            .firmware_version,
        "1.0"
    );

    // A task with two devices; a device can be in one unfinished task at a time.
    let t1 = store
        .create_firmware_task(&task("2.0"), &[entry("d1"), entry("d2")])
        .await
        .unwrap();
    match store
        .create_firmware_task(&task("2.0"), &[entry("d3"), entry("d2")])
        .await
    {
        Err(StoreError::Conflict { what }) => assert_eq!(what, "device in an update task"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.firmware_task(t1).await.unwrap().unwrap().task_id, t1);
    let t2 = store
        .create_firmware_task(&task("1.0"), &[entry("d3")])
        .await
        .unwrap();
    assert_ne!(t1, t2);
    assert_eq!(
        store
            .list_firmware_tasks(&p, "2.0", page(0, 10))
            .await
            .unwrap()
            .total,
        1
    );

    // Status moves only from the statuses allowed.
    let mut d1 = store
        .active_task_device(&p, &dn("d1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d1.task_id, t1);
    d1.status = 3;
    d1.percent = 40;
    assert!(store.update_task_device(&d1, &[1, 2]).await.unwrap());
    d1.status = 6;
    assert!(
        !store.update_task_device(&d1, &[1, 2]).await.unwrap(),
        "3 is not allowed"
    );
    assert!(store.update_task_device(&d1, &[3]).await.unwrap());
    assert_eq!(
        store.active_task_device(&p, &dn("d1")).await.unwrap(),
        None,
        "done"
    );

    let filter = TaskDeviceFilter {
        task_id: Some(t1),
        ..TaskDeviceFilter::default()
    };
    let devices = store.task_devices(&p, &filter, page(0, 10)).await.unwrap();
    assert_eq!(devices.total, 2);
    assert_eq!(devices.items[0].device_name, dn("d1"));
    assert_eq!((devices.items[0].status, devices.items[0].percent), (6, 40));
    let by_version = TaskDeviceFilter {
        version: Some("1.0".to_owned()),
        ..TaskDeviceFilter::default()
    };
    let devices = store
        .task_devices(&p, &by_version, page(0, 10))
        .await
        .unwrap();
    assert_eq!(devices.total, 1);
    assert_eq!(devices.items[0].device_name, dn("d3"));

    assert_eq!(
        store.task_status_counts(&p, "2.0", Some(t1)).await.unwrap(),
        [(1, 1), (6, 1)]
    );
    assert_eq!(
        store.task_status_counts(&p, "2.0", None).await.unwrap(),
        [(1, 1), (6, 1)]
    );
    assert_eq!(
        store.task_status_counts(&p, "1.0", None).await.unwrap(),
        [(1, 1)]
    );
}
