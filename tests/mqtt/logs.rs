//! Device logs end to end: a device's connect, refused authentication, subscribe (one
//! filter granted, one refused), publish and disconnect, and a PublishMessage to it, found
//! with Tencent's ListLog / ListLogPayload (keywords, time range, paging) and with SQL
//! (Eddy's QueryDeviceLogs), which stays read-only.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rumqttc::QoS;
use serde_json::{Value, json};

use crate::device::TestDevice;
use crate::support::{self, error_code};
use crate::{STEP, credentials, fresh, hub_with_device};

/// Calls `action` until `done` holds for its answer (log rows arrive asynchronously).
async fn until(
    api: &eddy::client::ApiClient,
    action: &str,
    params: &Value,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let answer = api.call(action, params).await.unwrap();
        if done(&answer) {
            return answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{action}: never got there: {answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn scenes(answer: &Value) -> Vec<String> {
    answer["Results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Scene"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn device_activity_is_logged_and_queried() {
    let (_dir, hub, api, pid, psk) = hub_with_device("", "boilers").await;
    let since = support::now() * 1000 - 60_000;

    // A refused CONNECT, then a good one.
    let wrong = credentials(
        &pid,
        "a",
        &BASE64.encode(b"not the device key"),
        support::now() + 600,
        crate::Sign::Sha1,
    );
    let (_c, mut events) = crate::client(&hub, &wrong);
    let _ = crate::next_incoming(&mut events).await;
    let mut dev = TestDevice::connect(&hub, &fresh(&pid, "a", &psk)).await;
    dev.subscribe(&format!("{pid}/a/control")).await;
    dev.client
        .subscribe(format!("{pid}/b/control"), QoS::AtMostOnce)
        .await
        .unwrap();
    let _ = crate::next_incoming(&mut dev.events).await; // its SUBACK (refused)
    dev.send_raw(
        &format!("{pid}/a/event"),
        br#"{"t":21.5}"#.to_vec(),
        QoS::AtLeastOnce,
    )
    .await;
    api.call(
        "PublishMessage",
        &json!({"ProductId": pid, "DeviceName": "a", "Topic": format!("{pid}/a/control"),
                "Payload": "on"}),
    )
    .await
    .unwrap();
    assert_eq!(dev.receive_raw(&format!("{pid}/a/control")).await, b"on");
    dev.client.disconnect().await.unwrap();
    let _ = crate::next_incoming(&mut dev.events).await;

    let window = |keywords: &str| {
        json!({"MinTime": since, "MaxTime": support::now() * 1000 + 60_000,
               "Keywords": keywords, "MaxNum": 100})
    };
    let all = until(
        &api,
        "ListLog",
        &window(&format!("productid:{pid} devicename:a")),
        |a| scenes(a).contains(&"DISCONNECT".to_owned()),
    )
    .await;
    let mut seen = scenes(&all);
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        ["AUTH", "CONNECT", "DISCONNECT", "PUBLISH", "SUBSCRIBE"],
        "{all}"
    );
    assert_eq!(all["Listover"], true);
    assert_eq!(
        all["TotalCount"].as_u64(),
        Some(all["Results"].as_array().unwrap().len() as u64)
    );
    let newest = &all["Results"][0];
    for key in [
        "Content",
        "DeviceName",
        "ProductId",
        "RequestId",
        "Result",
        "Scene",
        "Time",
    ] {
        assert!(newest[key].is_string(), "{key}: {newest}");
    }

    let auth = api.call("ListLog", &window("scene:auth")).await.unwrap();
    assert_eq!(auth["Results"][0]["Result"], "fail");
    assert!(
        auth["Results"][0]["Content"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{auth}"
    );
    let subscribe = api
        .call(
            "ListLog",
            &window(&format!("scene:SUBSCRIBE {pid}/b/control")),
        )
        .await
        .unwrap();
    assert_eq!(subscribe["TotalCount"], 1, "{subscribe}");
    assert_eq!(subscribe["Results"][0]["Result"], "fail");

    // Paging: one at a time, Context says where the next starts.
    let mut params = window("devicename:a");
    params["MaxNum"] = json!(1);
    let first = api.call("ListLog", &params).await.unwrap();
    assert_eq!(
        (first["Listover"].clone(), first["Context"].clone()),
        (json!(false), json!("1"))
    );
    params["Context"] = json!("1");
    let second = api.call("ListLog", &params).await.unwrap();
    assert_ne!(
        first["Results"][0]["RequestId"],
        second["Results"][0]["RequestId"]
    );

    // The messages, both ways, with their contents.
    let payloads = api
        .call("ListLogPayload", &window(&format!("productid:{pid}")))
        .await
        .unwrap();
    let results = payloads["Results"].as_array().unwrap();
    let up = results
        .iter()
        .find(|r| r["SrcType"] == "device")
        .expect("the device's publish");
    assert_eq!(
        BASE64.decode(up["Payload"].as_str().unwrap()).unwrap(),
        br#"{"t":21.5}"#
    );
    assert_eq!(up["PayloadFormatType"], "json");
    assert_eq!(up["Topic"], format!("{pid}/a/event"));
    assert_eq!(up["DeviceName"], "a");
    let down = results
        .iter()
        .find(|r| r["SrcType"] == "api")
        .expect("PublishMessage");
    assert_eq!(
        BASE64.decode(down["Payload"].as_str().unwrap()).unwrap(),
        b"on"
    );
    assert!(down["DateTime"].as_str().unwrap().parse::<i64>().is_ok());

    // SQL over the same rows.
    let counted = api
        .call(
            "QueryDeviceLogs",
            &json!({"Sql": "SELECT scene, COUNT(*) AS n FROM logs WHERE device_name = 'a' GROUP BY scene ORDER BY scene"}),
        )
        .await
        .unwrap();
    let by_scene: Vec<(String, i64)> = counted["Rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["scene"].as_str().unwrap().to_owned(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        by_scene.contains(&("PUBLISH".to_owned(), 2)),
        "{by_scene:?}"
    );
    assert!(
        by_scene.contains(&("CONNECT".to_owned(), 1)),
        "{by_scene:?}"
    );
    for bad in [
        "SELEC 1",
        "COPY logs TO '/tmp/eddy-logs.csv'",
        "DROP TABLE logs",
    ] {
        assert_eq!(
            error_code(api.call("QueryDeviceLogs", &json!({"Sql": bad})).await),
            "InvalidParameterValue",
            "{bad}"
        );
    }
    assert_eq!(
        error_code(api.call("ListLog", &window("colour:red")).await),
        "InvalidParameterValue"
    );
}
