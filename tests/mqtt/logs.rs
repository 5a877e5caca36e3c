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

/// HMAC under the first 24 characters of the device's PSK string, as the SDKs key it.
fn sdk_mac<M: hmac::Mac + hmac::digest::KeyInit>(psk: &str, msg: &[u8]) -> Vec<u8> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(&psk.as_bytes()[..24]).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// `/device/reportlog` as the Java SDK (hmacsha256) or the newer C SDK (hmacsha1, SHA-1
/// body hash) signs it; returns the reply.
async fn report(hub: &support::Hub, psk: &str, body: &Value, algorithm: &str, nonce: u32) -> Value {
    use sha2::Digest as _;
    let body = body.to_string();
    let hash = if algorithm == "hmacsha1" {
        hex::encode(sha1::Sha1::digest(body.as_bytes()))
    } else {
        hex::encode(sha2::Sha256::digest(body.as_bytes()))
    };
    let timestamp = support::now();
    let to_sign = format!(
        "POST\nap-guangzhou.gateway.tencentdevices.com\n/device/reportlog\n\n{algorithm}\n{timestamp}\n{nonce}\n{hash}"
    );
    let signature = if algorithm == "hmacsha1" {
        sdk_mac::<hmac::Hmac<sha1::Sha1>>(psk, to_sign.as_bytes())
    } else {
        sdk_mac::<hmac::Hmac<sha2::Sha256>>(psk, to_sign.as_bytes())
    };
    reqwest::Client::new()
        .post(format!("{}/device/reportlog", hub.endpoint))
        .header("Content-Type", "application/json;charset=utf-8")
        .header("X-TC-Algorithm", algorithm)
        .header("X-TC-Timestamp", timestamp.to_string())
        .header("X-TC-Nonce", nonce.to_string())
        .header("X-TC-Signature", BASE64.encode(signature))
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn sdk_log_uploads_in_both_protocols_reach_list_sdk_log() {
    let (_dir, hub, api, pid, psk) = hub_with_device("", "loggers").await;

    // The C SDK's legacy upload: a 112-byte header signed with HMAC-SHA1, lines ending \n\f.
    let legacy = |psk: &str| {
        let mut signed = format!("P###{pid}{:#<48}{:010}", "a", 0).into_bytes();
        signed.extend_from_slice(
            b"ERR|2026-11-28 10:00:00|mqtt_client.c|connect(12): boom\n\x0cINF|2026-11-28 10:00:01|x.c|y(1): fine\n\x0c",
        );
        let mut body = hex::encode(sdk_mac::<hmac::Hmac<sha1::Sha1>>(psk, &signed)).into_bytes();
        body.extend_from_slice(&signed);
        body
    };
    let post = |body: Vec<u8>| {
        let url = format!("{}/cgi-bin/report-log", hub.endpoint);
        async move {
            let reply: Value = reqwest::Client::new()
                .post(url)
                .header("Content-Type", "text/plain;charset=utf-8")
                .body(body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            reply
        }
    };
    assert_eq!(post(legacy(&psk)).await["Retcode"], 0);
    assert_ne!(
        post(legacy("AAAAAAAAAAAAAAAAAAAAAAAAAAAA")).await["Retcode"],
        0,
        "wrong key"
    );

    // The current Java SDK: one element holding \n\f-separated lines, hmacsha256.
    let java = json!({"ProductId": pid, "DeviceName": "a",
                      "Message": ["WRN|2026-11-28 10:00:02|tag|careful\n\u{c}DBG|2026-11-28 10:00:03|tag|detail\n\u{c}"]});
    let reply = report(&hub, &psk, &java, "hmacsha256", 1).await;
    assert!(
        reply["Response"]["RequestId"].is_string() && reply["Response"]["Error"].is_null(),
        "{reply}"
    );
    assert_eq!(
        report(&hub, &psk, &java, "hmacsha256", 1).await["Response"]["Error"]["Code"],
        "AuthFailure.NonceReused"
    );
    // The newer C SDK: one element per line, hmacsha1 with a SHA-1 body hash.
    let c = json!({"DeviceName": "a", "Level": "ERR", "ProductId": pid,
                   "Message": ["ERR|2026-11-28 10:00:04|log.c|f(9): late"]});
    let reply = report(&hub, &psk, &c, "hmacsha1", 2).await;
    assert!(reply["Response"]["Error"].is_null(), "{reply}");
    let reply = report(&hub, "BBBBBBBBBBBBBBBBBBBBBBBBBBBB", &c, "hmacsha1", 3).await;
    assert_eq!(
        reply["Response"]["Error"]["Code"],
        "AuthFailure.SignatureFailure"
    );

    let window = |keywords: &str| {
        json!({"MinTime": support::now() * 1000 - 60_000, "MaxTime": support::now() * 1000 + 60_000,
               "Keywords": keywords, "MaxNum": 100})
    };
    let all = until(
        &api,
        "ListSDKLog",
        &window(&format!("productid:{pid} devicename:a")),
        |a| a["Results"].as_array().is_some_and(|r| r.len() == 5),
    )
    .await;
    let mut levels: Vec<&str> = all["Results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Level"].as_str().unwrap())
        .collect();
    levels.sort_unstable();
    assert_eq!(levels, ["DBG", "ERR", "ERR", "INF", "WRN"]);
    let errors = api
        .call("ListSDKLog", &window("loglevel:err"))
        .await
        .unwrap();
    let errors = errors["Results"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().any(|r| r["DateTime"] == "2026-11-28 10:00:00"
        && r["Content"] == "ERR|2026-11-28 10:00:00|mqtt_client.c|connect(12): boom"));
    // The SDK's lines are not device events.
    let events = api.call("ListLog", &window("scene:SDK")).await.unwrap();
    assert_eq!(events["Results"].as_array().unwrap().len(), 0);
}
