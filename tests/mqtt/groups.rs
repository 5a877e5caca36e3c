//! Device groups (Eddy's actions): their lifecycle, and a group as the target of a
//! broadcast and of an update task.

use serde_json::{Value, json};

use crate::device::TestDevice;
use crate::support::{self, error_code};
use crate::{fresh, hub_with_device};

#[tokio::test]
async fn groups_target_broadcasts_and_update_tasks() {
    let (_dir, hub, api, pid, psk_a) = hub_with_device("", "valves").await;
    let psk_of = |v: Value| v["DevicePsk"].as_str().unwrap().to_owned();
    let psk_b = psk_of(support::create_device(&api, &pid, "b").await);
    support::create_device(&api, &pid, "c").await;
    let other = support::create_product(&api, "pumps", "2").await;
    support::create_device(&api, &other, "p1").await;

    api.call(
        "CreateDeviceGroup",
        &json!({"GroupName": "floor-2", "GroupDescription": "2F"}),
    )
    .await
    .unwrap();
    assert_eq!(
        error_code(
            api.call("CreateDeviceGroup", &json!({"GroupName": "floor-2"}))
                .await
        ),
        "InvalidParameterValue.DeviceGroupAlreadyExist"
    );
    assert_eq!(
        error_code(
            api.call("CreateDeviceGroup", &json!({"GroupName": "bad name"}))
                .await
        ),
        "InvalidParameterValue"
    );
    let members = json!({"GroupName": "floor-2", "Devices": [
        {"ProductId": pid, "DeviceName": "a"},
        {"ProductId": pid, "DeviceName": "c"},
        {"ProductId": other, "DeviceName": "p1"},
    ]});
    api.call("AddDevicesToGroup", &members).await.unwrap();
    api.call("AddDevicesToGroup", &members).await.unwrap(); // members already: kept once
    assert_eq!(
        error_code(
            api.call(
                "AddDevicesToGroup",
                &json!({"GroupName": "floor-2", "Devices": [{"ProductId": pid, "DeviceName": "zz"}]}),
            )
            .await
        ),
        "ResourceNotFound.DeviceNotExist"
    );
    assert_eq!(
        error_code(
            api.call(
                "AddDevicesToGroup",
                &json!({"GroupName": "nope", "Devices": [{"ProductId": pid, "DeviceName": "a"}]})
            )
            .await
        ),
        "ResourceNotFound.DeviceGroupNotExist"
    );
    let groups = api.call("DescribeDeviceGroups", &json!({})).await.unwrap();
    assert_eq!(groups["Groups"][0]["DeviceCount"], 3);
    let in_product = api
        .call(
            "DescribeGroupDevices",
            &json!({"GroupName": "floor-2", "ProductId": pid}),
        )
        .await
        .unwrap();
    let names: Vec<&str> = in_product["Devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["DeviceName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "c"]);

    // A broadcast to the group reaches a (a member) but not b (online, not a member).
    let mut a = TestDevice::connect(&hub, &fresh(&pid, "a", &psk_a)).await;
    let mut b = TestDevice::connect(&hub, &fresh(&pid, "b", &psk_b)).await;
    a.subscribe(&format!("$broadcast/rxd/{pid}/a")).await;
    b.subscribe(&format!("$broadcast/rxd/{pid}/b")).await;
    api.call(
        "PublishBroadcastMessage",
        &json!({"ProductId": pid, "Payload": "members", "Qos": 0, "GroupName": "floor-2"}),
    )
    .await
    .unwrap();
    assert_eq!(
        a.receive_raw(&format!("$broadcast/rxd/{pid}/a")).await,
        b"members"
    );
    api.call(
        "PublishBroadcastMessage",
        &json!({"ProductId": pid, "Payload": "everyone", "Qos": 0}),
    )
    .await
    .unwrap();
    // b's first broadcast is the one to everyone: the group's never reached it.
    assert_eq!(
        b.receive_raw(&format!("$broadcast/rxd/{pid}/b")).await,
        b"everyone"
    );

    // An update task for the group holds the product's members: a and c.
    crate::ota::upload(&api, &pid, "3.0", &[7u8; 4096]).await;
    let task = api
        .call(
            "BatchUpdateFirmware",
            &json!({"ProductId": pid, "FirmwareVersion": "3.0", "GroupName": "floor-2"}),
        )
        .await
        .unwrap()["TaskId"]
        .as_i64()
        .unwrap();
    let devices = api
        .call(
            "DescribeFirmwareTaskDevices",
            &json!({"ProductId": pid, "Filters": [{"Key": "TaskId", "Value": task.to_string()}]}),
        )
        .await
        .unwrap();
    let names: Vec<&str> = devices["Devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["DeviceName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "c"]);
    let described = api
        .call(
            "DescribeFirmwareTask",
            &json!({"ProductId": pid, "FirmwareVersion": "3.0", "TaskId": task}),
        )
        .await
        .unwrap();
    assert_eq!(described["UpgradeMode"], "group");

    // Removing and deleting.
    let removed = api
        .call(
            "RemoveDevicesFromGroup",
            &json!({"GroupName": "floor-2", "Devices": [{"ProductId": pid, "DeviceName": "c"}]}),
        )
        .await
        .unwrap();
    assert_eq!(removed["RemovedCount"], 1);
    api.call("DeleteDeviceGroup", &json!({"GroupName": "floor-2"}))
        .await
        .unwrap();
    assert_eq!(
        error_code(
            api.call("DescribeGroupDevices", &json!({"GroupName": "floor-2"}))
                .await
        ),
        "ResourceNotFound.DeviceGroupNotExist"
    );
}
