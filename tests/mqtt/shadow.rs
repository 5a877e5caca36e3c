//! The device shadow end to end (Tencent §4): the exact JSON Tencent's device SDKs send
//! (C: no version; Java: version 0; both clear desired with `"desired": null`), the exact
//! reply shapes, the management plane's UpdateDeviceShadow with its delta push, limits,
//! and durability across kill -9.

use rumqttc::QoS;
use serde_json::{Value, json};

use crate::device::TestDevice;
use crate::support::{self, error_code};
use crate::{NO_CONNECT_INTERVAL, fresh, hub_with_device};

struct Topics {
    request: String,
    result: String,
}

fn topics(pid: &str) -> Topics {
    Topics {
        request: format!("$shadow/operation/{pid}/a"),
        result: format!("$shadow/operation/result/{pid}/a"),
    }
}

fn as_int(value: &Value, what: &str) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("{what} must be an integer, got {value}"))
}

/// A reply's `timestamp` in the unit Tencent uses for it: get replies in seconds, update
/// replies in milliseconds.
fn assert_now(value: &Value, millis: bool) {
    let now = support::now();
    let got = as_int(value, "timestamp");
    let secs = if millis { got / 1000 } else { got };
    assert!(
        (now - 600..=now + 600).contains(&secs),
        "timestamp {got} is not now"
    );
}

#[tokio::test]
async fn device_and_api_share_one_shadow() {
    let (_dir, hub, api, pid, psk) = hub_with_device("", "thermostats").await;
    let t = topics(&pid);
    let mut dev = TestDevice::connect(&hub, &fresh(&pid, "a", &psk)).await;
    dev.subscribe(&t.result).await;

    // An empty shadow, exactly as Tencent answers it (C SDK's get: type first).
    let reply = dev
        .ask(
            &t.request,
            &t.result,
            &json!({"type": "get", "clientToken": format!("{pid}-0")}),
        )
        .await;
    assert_now(&reply["timestamp"], false);
    assert_eq!(
        reply,
        json!({
            "clientToken": format!("{pid}-0"),
            "payload": {"state": {"reported": {}}, "timestamp": 0, "version": 0},
            "result": 0,
            "timestamp": reply["timestamp"],
            "type": "get",
        })
    );

    // The C SDK's update: no version. The reply echoes what was written.
    let reply = dev
        .ask(
            &t.request,
            &t.result,
            &json!({"type": "update", "state": {"reported": {"updateCount": 1, "temp": 20.5}},
                    "clientToken": format!("{pid}-1")}),
        )
        .await;
    assert_now(&reply["timestamp"], true);
    assert_now(&reply["payload"]["timestamp"], true);
    assert_eq!(reply["clientToken"], format!("{pid}-1"));
    assert_eq!(reply["type"], "update");
    assert_eq!(reply["result"], 0);
    assert_eq!(
        reply["payload"]["state"],
        json!({"reported": {"updateCount": 1, "temp": 20.5}})
    );
    assert_eq!(reply["payload"]["version"], 1);

    // The Java SDK's update: version 0, no check.
    let reply = dev
        .ask(
            &t.request,
            &t.result,
            &json!({"type": "update", "state": {"reported": {"updateCount": 2}}, "version": 0,
                    "clientToken": format!("{pid}a-2")}),
        )
        .await;
    assert_eq!(
        (reply["result"].clone(), reply["payload"]["version"].clone()),
        (json!(0), json!(2))
    );

    // A stale version is refused with 5005, and the reply says the current one.
    let reply = dev
        .ask(
            &t.request,
            &t.result,
            &json!({"type": "update", "state": {"reported": {"updateCount": 9}}, "version": 1,
                    "clientToken": "stale"}),
        )
        .await;
    assert_eq!(reply["result"], 5005, "{reply}");
    assert_eq!(reply["clientToken"], "stale");
    assert_eq!(reply["type"], "update");
    assert_eq!(reply["payload"]["version"], 2);
    // …while the matching version is taken.
    let reply = dev
        .ask(
            &t.request,
            &t.result,
            &json!({"type": "update", "state": {"reported": {"updateCount": 3}}, "version": 2,
                    "clientToken": "fresh"}),
        )
        .await;
    assert_eq!(
        (reply["result"].clone(), reply["payload"]["version"].clone()),
        (json!(0), json!(3))
    );

    // The management plane desires a colour: ShadowVersion must be the current version.
    let update = |version: i64, state: Value| {
        let api = api.clone();
        let pid = pid.clone();
        async move {
            api.call(
                "UpdateDeviceShadow",
                &json!({"ProductId": pid, "DeviceName": "a", "State": state.to_string(),
                        "ShadowVersion": version}),
            )
            .await
        }
    };
    assert_eq!(
        error_code(update(2, json!({"desired": {"color": "red"}})).await),
        "FailedOperation.UpdateVersionNotMatch"
    );
    assert_eq!(
        error_code(update(3, json!({"reported": {"color": "red"}})).await),
        "InvalidParameterValue.JSONHasInvalidNode"
    );
    let answer = update(3, json!({"desired": {"color": "red", "temp": 20.5}}))
        .await
        .unwrap();
    let data: Value = serde_json::from_str(answer["Data"].as_str().unwrap()).unwrap();
    assert_eq!(data["type"], "update");
    assert_eq!(data["result"], 0);
    assert_eq!(
        data["payload"]["state"],
        json!({"desired": {"color": "red", "temp": 20.5}})
    );
    assert_eq!(data["payload"]["version"], 4);

    // The device is told the delta right away: only what differs, flat under state.
    let delta = dev.receive(&t.result).await;
    assert_eq!(delta["type"], "delta");
    assert_eq!(delta["payload"]["state"], json!({"color": "red"}));
    assert_eq!(delta["payload"]["version"], 4);
    assert!(delta.get("clientToken").is_none(), "{delta}");

    // A get shows reported, desired and the delta.
    let reply = dev
        .ask(
            &t.request,
            &t.result,
            &json!({"type": "get", "clientToken": "g"}),
        )
        .await;
    assert_eq!(
        reply["payload"]["state"],
        json!({
            "reported": {"updateCount": 3, "temp": 20.5},
            "desired": {"color": "red", "temp": 20.5},
            "delta": {"color": "red"},
        })
    );
    assert_eq!(reply["payload"]["version"], 4);

    // The C SDK's ConstructReportAndDesireAllNull: report the new state, clear desired.
    let reply = dev
        .ask(
            &t.request,
            &t.result,
            &json!({"type": "update", "state": {"reported": {"color": "red"}, "desired": null},
                    "clientToken": "done"}),
        )
        .await;
    assert_eq!(reply["result"], 0);
    assert_eq!(
        reply["payload"]["state"],
        json!({"reported": {"color": "red"}, "desired": null})
    );

    // DescribeDeviceShadow: the get envelope without a token, as a JSON string.
    let described = api
        .call(
            "DescribeDeviceShadow",
            &json!({"ProductId": pid, "DeviceName": "a"}),
        )
        .await
        .unwrap();
    let data: Value = serde_json::from_str(described["Data"].as_str().unwrap()).unwrap();
    assert_eq!(data["type"], "get");
    assert_eq!(data["result"], 0);
    assert!(data.get("clientToken").is_none());
    assert_eq!(
        data["payload"]["state"],
        json!({"reported": {"updateCount": 3, "temp": 20.5, "color": "red"}})
    );
    assert_eq!(data["payload"]["version"], 5);

    // overwriteUpdate replaces reported; a null property removes it when merging.
    let reply = dev
        .ask(
            &t.request,
            &t.result,
            &json!({"overwriteUpdate": true, "type": "update",
                    "state": {"reported": {"only": true}}, "clientToken": "o"}),
        )
        .await;
    assert_eq!(reply["result"], 0);
    let reply = dev
        .ask(
            &t.request,
            &t.result,
            &json!({"type": "get", "clientToken": "g2"}),
        )
        .await;
    assert_eq!(
        reply["payload"]["state"],
        json!({"reported": {"only": true}})
    );

    // Bad requests get a reply with a non-zero result, a payload and the reason.
    for (bad, kind) in [
        (
            json!({"type": "update", "state": {"reported": 5}, "clientToken": "b1"}),
            "update",
        ),
        (json!({"type": "update", "clientToken": "b2"}), "update"),
        (json!({"type": "fly", "clientToken": "b3"}), "fly"),
        (
            json!({"type": "update", "clientToken": "b4",
                   "state": {"reported": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}}),
            "update",
        ),
    ] {
        let reply = dev.ask(&t.request, &t.result, &bad).await;
        assert_ne!(reply["result"], 0, "{bad} → {reply}");
        assert_eq!(reply["type"], kind);
        assert_eq!(reply["clientToken"], bad["clientToken"]);
        assert!(reply["payload"].is_object(), "{reply}");
        assert!(reply["message"].is_string(), "{reply}");
    }
    dev.send_raw(&t.request, b"not json".to_vec(), QoS::AtMostOnce)
        .await;
    let reply = dev.receive(&t.result).await;
    assert_ne!(reply["result"], 0);

    // Deleting the shadow starts it over at version 0.
    api.call(
        "DeleteDeviceShadow",
        &json!({"ProductId": pid, "DeviceName": "a"}),
    )
    .await
    .unwrap();
    assert_eq!(
        error_code(
            api.call(
                "DeleteDeviceShadow",
                &json!({"ProductId": pid, "DeviceName": "a"})
            )
            .await
        ),
        "ResourceNotFound.DeviceShadowNotExist"
    );
    let reply = dev
        .ask(
            &t.request,
            &t.result,
            &json!({"type": "get", "clientToken": "g3"}),
        )
        .await;
    assert_eq!(reply["payload"]["version"], 0);
    assert_eq!(
        error_code(
            api.call(
                "DescribeDeviceShadow",
                &json!({"ProductId": pid, "DeviceName": "nobody"})
            )
            .await
        ),
        "ResourceNotFound.DeviceNotExist"
    );
}

#[tokio::test]
async fn offline_device_gets_its_delta_and_shadow_survives_kill_9() {
    let dir = support::workdir();
    let hub = support::Hub::start_with(dir.path(), "", NO_CONNECT_INTERVAL);
    let api = hub.client();
    let pid = support::create_product(&api, "lamps", "2").await;
    let psk = support::create_device(&api, &pid, "a").await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = topics(&pid);

    // A QoS 1 update is acknowledged only once stored: after the PUBACK, kill -9.
    let mut dev = TestDevice::connect(&hub, &fresh(&pid, "a", &psk)).await;
    let update = json!({"type": "update", "state": {"reported": {"on": false, "level": 3}},
                        "clientToken": "q1"});
    dev.send_raw(
        &t.request,
        update.to_string().into_bytes(),
        QoS::AtLeastOnce,
    )
    .await;
    drop(dev);
    hub.kill9();

    let hub = support::Hub::start_with(dir.path(), "", NO_CONNECT_INTERVAL);
    let api = hub.client();
    let described = api
        .call(
            "DescribeDeviceShadow",
            &json!({"ProductId": pid, "DeviceName": "a"}),
        )
        .await
        .unwrap();
    let data: Value = serde_json::from_str(described["Data"].as_str().unwrap()).unwrap();
    assert_eq!(
        data["payload"]["state"],
        json!({"reported": {"on": false, "level": 3}})
    );
    assert_eq!(data["payload"]["version"], 1);

    // Desired while the device is offline: no push reaches it, its next get has the delta.
    api.call(
        "UpdateDeviceShadow",
        &json!({"ProductId": pid, "DeviceName": "a",
                "State": json!({"desired": {"on": true, "level": 3}}).to_string(),
                "ShadowVersion": 1}),
    )
    .await
    .unwrap();
    hub.kill9();

    let hub = support::Hub::start_with(dir.path(), "", NO_CONNECT_INTERVAL);
    let mut dev = TestDevice::connect(&hub, &fresh(&pid, "a", &psk)).await;
    dev.subscribe(&t.result).await;
    let reply = dev
        .ask(
            &t.request,
            &t.result,
            &json!({"type": "get", "clientToken": "back"}),
        )
        .await;
    assert_eq!(reply["payload"]["state"]["delta"], json!({"on": true}));
    assert_eq!(reply["payload"]["version"], 2);
}
