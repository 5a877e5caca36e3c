//! Gateways and sub-devices end to end (Tencent §6): BindDevices and the `$gateway`
//! protocol's bind (signature under the sub-device's PSK string), describe_sub_devices,
//! online (the gateway's connection then publishes, subscribes and is reached for the
//! sub-device, including its shadow), offline, unbind, the per-gateway limit, and a gateway
//! disconnect taking its sub-devices offline.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rumqttc::QoS;
use serde_json::{Value, json};

use crate::device::TestDevice;
use crate::support::{self, Hub, error_code};
use crate::{NO_CONNECT_INTERVAL, fresh};

/// What a gateway SDK sends to bind a sub-device: base64(HMAC-SHA256 under the PSK string).
fn bind_entry(pid: &str, dn: &str, psk: &str) -> Value {
    let (random, timestamp) = (12345, support::now());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(psk.as_bytes()).unwrap();
    mac.update(format!("{pid}{dn};{random};{timestamp}").as_bytes());
    json!({
        "product_id": pid, "device_name": dn, "random": random, "timestamp": timestamp,
        "signmethod": "hmacsha256", "authtype": "psk",
        "signature": BASE64.encode(mac.finalize().into_bytes()),
    })
}

fn results(reply: &Value) -> Vec<(String, i64)> {
    reply["payload"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device_name"].as_str().unwrap().to_owned(),
                d["result"].as_i64().expect("an integer result"),
            )
        })
        .collect()
}

/// The registry records online states in order but after the answer: wait for `want`.
async fn becomes(api: &eddy::client::ApiClient, pid: &str, dn: &str, want: i64) {
    let deadline = std::time::Instant::now() + crate::STEP;
    while online(api, pid, dn).await != want {
        assert!(
            std::time::Instant::now() < deadline,
            "{dn} never became {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn online(api: &eddy::client::ApiClient, pid: &str, dn: &str) -> i64 {
    api.call(
        "DescribeDevice",
        &json!({"ProductId": pid, "DeviceName": dn}),
    )
    .await
    .unwrap()["Online"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_gateway_speaks_for_its_sub_devices() {
    let dir = support::workdir();
    let hub = Hub::start_configured(
        dir.path(),
        "",
        "[services]\nmax-sub-devices = 3\n",
        NO_CONNECT_INTERVAL,
    );
    let api = hub.client();
    let gw_pid = api
        .call(
            "CreateProduct",
            &json!({"ProductName": "gateways",
                    "ProductProperties": {"EncryptionType": "2", "ProductType": 5}}),
        )
        .await
        .unwrap()["ProductId"]
        .as_str()
        .unwrap()
        .to_owned();
    let gw_psk = support::create_device(&api, &gw_pid, "gw").await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned();
    let pid = support::create_product(&api, "lamps", "2").await;
    let mut psks = std::collections::HashMap::new();
    for dn in ["s1", "s2", "s3", "s4", "s5"] {
        let psk = support::create_device(&api, &pid, dn).await["DevicePsk"]
            .as_str()
            .unwrap()
            .to_owned();
        psks.insert(dn, psk);
    }
    let gw = json!({"GatewayProductId": gw_pid, "GatewayDeviceName": "gw", "ProductId": pid});
    let with = |names: &[&str]| {
        let mut params = gw.clone();
        params["DeviceNames"] = json!(names);
        params
    };

    // The API binds s1; an ordinary device is no gateway.
    api.call("BindDevices", &with(&["s1"])).await.unwrap();
    let mut not_gateway = with(&["s2"]);
    not_gateway["GatewayProductId"] = json!(pid);
    not_gateway["GatewayDeviceName"] = json!("s5");
    assert_eq!(
        error_code(api.call("BindDevices", &not_gateway).await),
        "InvalidParameterValue.ProductTypeNotSupport"
    );

    let (op, result) = (
        format!("$gateway/operation/{gw_pid}/gw"),
        format!("$gateway/operation/result/{gw_pid}/gw"),
    );
    let mut gateway = TestDevice::connect(&hub, &fresh(&gw_pid, "gw", &gw_psk)).await;
    gateway.subscribe(&result).await;

    // MQTT bind: s2 and s3 with good signatures, s4 with a wrong one.
    let mut bad = bind_entry(&pid, "s4", &psks["s4"]);
    bad["signature"] = json!(BASE64.encode([0u8; 32]));
    let reply = gateway
        .ask(
            &op,
            &result,
            &json!({"type": "bind", "payload": {"devices": [
                bind_entry(&pid, "s2", &psks["s2"]), bind_entry(&pid, "s3", &psks["s3"]), bad,
            ]}}),
        )
        .await;
    assert_eq!(reply["type"], "bind");
    assert_eq!(
        results(&reply),
        [("s2".into(), 0), ("s3".into(), 0), ("s4".into(), -1)]
    );
    // The limit is three: s4, even signed right, is refused; so is the API.
    let reply = gateway
        .ask(
            &op,
            &result,
            &json!({"type": "bind", "payload": {"devices": [bind_entry(&pid, "s4", &psks["s4"])]}}),
        )
        .await;
    assert_eq!(results(&reply), [("s4".into(), -1)]);
    assert_eq!(
        error_code(api.call("BindDevices", &with(&["s5"])).await),
        "LimitExceeded.GatewaySubDeviceLimit"
    );
    let listed = api.call("DescribeGatewayBindDevices", &gw).await.unwrap();
    assert_eq!(listed["TotalCount"], 3);
    let reply = gateway
        .ask(&op, &result, &json!({"type": "describe_sub_devices"}))
        .await;
    let described: Vec<&str> = reply["payload"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_name"].as_str().unwrap())
        .collect();
    assert_eq!(described, ["s1", "s2", "s3"]);

    // Before online the gateway may not use s1's topics; the SUBACK refuses.
    let control = format!("{pid}/s1/control");
    gateway
        .client
        .subscribe(&control, QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let rumqttc::Packet::SubAck(ack) =
            crate::next_incoming(&mut gateway.events).await.unwrap()
        {
            assert_eq!(ack.return_codes, [rumqttc::SubscribeReasonCode::Failure]);
            break;
        }
    }
    let reply = gateway
        .ask(
            &op,
            &result,
            &json!({"type": "online", "payload": {"devices": [
                {"product_id": pid, "device_name": "s1"},
                {"product_id": pid, "device_name": "s5"},
            ]}}),
        )
        .await;
    assert_eq!(
        results(&reply),
        [("s1".into(), 0), ("s5".into(), -1)],
        "s5 is not bound"
    );
    becomes(&api, &pid, "s1", 1).await;

    // Online: the gateway subscribes to s1's control topic and gets PublishMessage for s1.
    gateway.subscribe(&control).await;
    api.call(
        "PublishMessage",
        &json!({"ProductId": pid, "DeviceName": "s1", "Topic": control, "Payload": "on"}),
    )
    .await
    .unwrap();
    assert_eq!(gateway.receive_raw(&control).await, b"on");
    // …and uses s1's shadow for it.
    let (shadow, shadow_result) = (
        format!("$shadow/operation/{pid}/s1"),
        format!("$shadow/operation/result/{pid}/s1"),
    );
    gateway.subscribe(&shadow_result).await;
    let reply = gateway
        .ask(
            &shadow,
            &shadow_result,
            &json!({"type": "update", "state": {"reported": {"on": true}}, "clientToken": "g1"}),
        )
        .await;
    assert_eq!(reply["result"], 0, "{reply}");
    // It publishes on s1's topics (acknowledged, so accepted).
    gateway
        .send_raw(&format!("{pid}/s1/event"), b"{}".to_vec(), QoS::AtLeastOnce)
        .await;

    // offline, then a gateway disconnect: its sub-devices go offline with it.
    let reply = gateway
        .ask(
            &op,
            &result,
            &json!({"type": "offline", "payload": {"devices": [{"product_id": pid, "device_name": "s1"}]}}),
        )
        .await;
    assert_eq!(results(&reply), [("s1".into(), 0)]);
    let reply = gateway
        .ask(
            &op,
            &result,
            &json!({"type": "online", "payload": {"devices": [{"product_id": pid, "device_name": "s2"}]}}),
        )
        .await;
    assert_eq!(results(&reply), [("s2".into(), 0)]);
    becomes(&api, &pid, "s2", 1).await;
    gateway.client.disconnect().await.unwrap();
    let _ = crate::next_incoming(&mut gateway.events).await;
    drop(gateway);
    // The registry learns of it in order, after the gateway's own offline.
    let deadline = std::time::Instant::now() + crate::STEP;
    while online(&api, &gw_pid, "gw").await == 1 || online(&api, &pid, "s2").await == 1 {
        assert!(std::time::Instant::now() < deadline, "s2 stayed online");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_ne!(online(&api, &pid, "s1").await, 1);

    // Unbinding through the API.
    api.call("UnbindDevices", &with(&["s1", "s2"]))
        .await
        .unwrap();
    assert_eq!(
        error_code(api.call("UnbindDevices", &with(&["s1"])).await),
        "UnauthorizedOperation.DeviceIsNotBindGateway"
    );
    let listed = api.call("DescribeGatewayBindDevices", &gw).await.unwrap();
    assert_eq!(listed["TotalCount"], 1);
    assert_eq!(listed["Devices"][0]["DeviceName"], "s3");
}
