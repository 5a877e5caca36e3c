//! Who may connect: Tencent key authentication in every SDK's variant.

use std::io::{Read as _, Write as _};

use rumqttc::{ConnectReturnCode, ConnectionError, Packet};
use serde_json::json;

use crate::support::{Hub, create_device, create_product, now, workdir};
use crate::{Sign, client, connected, credentials, fresh, next_incoming, raw_connect};

fn psk_of(created: &serde_json::Value) -> String {
    created["DevicePsk"].as_str().unwrap().to_owned()
}

async fn refused(hub: &Hub, creds: &crate::DeviceCredentials) -> ConnectReturnCode {
    let (_client, mut eventloop) = client(hub, creds);
    match next_incoming(&mut eventloop).await {
        Err(ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("expected a refused CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn key_devices_connect_in_every_sdk_variant() {
    let dir = workdir();
    let hub = Hub::start_with(dir.path(), "", crate::NO_CONNECT_INTERVAL);
    let api = hub.client();
    let pid = create_product(&api, "meters", "2").await;
    let psk = psk_of(&create_device(&api, &pid, "m1").await);

    for (expiry, sign) in [
        (now() + 600, Sign::Sha1),             // C SDK: seconds, SHA-1
        ((now() + 600) * 1000, Sign::Sha1),    // Python SDK: milliseconds
        ((now() - 86_400) * 1000, Sign::Sha1), // …which are its signing time, reused
        (i64::MAX, Sign::Sha1),                // C SDK: LONG_MAX
        (now() + 600, Sign::Sha256),           // Java SDK: SHA-256
    ] {
        let creds = credentials(&pid, "m1", &psk, expiry, sign);
        let (client, mut eventloop) = connected(&hub, &creds).await;
        client.disconnect().await.unwrap();
        let _ = next_incoming(&mut eventloop).await;
    }

    // The registry saw it: online while connected, with the client's address.
    let (client, _eventloop) = connected(&hub, &fresh(&pid, "m1", &psk)).await;
    let d = api
        .call(
            "DescribeDevice",
            &json!({ "ProductId": pid, "DeviceName": "m1" }),
        )
        .await
        .unwrap();
    assert_eq!(d["Online"], 1);
    assert_eq!(d["ClientIP"], "127.0.0.1");
    assert!(d["LoginTime"].as_i64().unwrap() > 0);
    drop(client);
}

#[tokio::test]
async fn bad_credentials_get_the_right_connack() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    let pid = create_product(&api, "locks", "2").await;
    let psk = psk_of(&create_device(&api, &pid, "l1").await);
    create_device(&api, &pid, "l2").await;

    let other_psk = "b3RoZXIta2V5LTE2Ynl0ZQ==";
    assert_eq!(
        refused(&hub, &fresh(&pid, "l1", other_psk)).await,
        ConnectReturnCode::BadUserNamePassword,
        "wrong PSK"
    );
    assert_eq!(
        refused(&hub, &credentials(&pid, "l1", &psk, now() - 10, Sign::Sha1)).await,
        ConnectReturnCode::BadUserNamePassword,
        "expired"
    );
    assert_eq!(
        refused(&hub, &fresh(&pid, "nobody", &psk)).await,
        ConnectReturnCode::NotAuthorized,
        "unknown device"
    );
    let mut bad_id = fresh(&pid, "l1", &psk);
    bad_id.client_id = "short".into();
    assert_eq!(
        refused(&hub, &bad_id).await,
        ConnectReturnCode::BadClientId,
        "not ProductId+DeviceName"
    );
    // l1's signature presented as l2.
    let mut stolen = fresh(&pid, "l1", &psk);
    stolen.client_id = format!("{pid}l2");
    assert_eq!(
        refused(&hub, &stolen).await,
        ConnectReturnCode::BadUserNamePassword,
        "someone else's credentials"
    );

    api.call(
        "UpdateDevicesEnableState",
        &json!({ "ProductId": pid, "DeviceNames": ["l1"], "Status": 0 }),
    )
    .await
    .unwrap();
    assert_eq!(
        refused(&hub, &fresh(&pid, "l1", &psk)).await,
        ConnectReturnCode::NotAuthorized,
        "disabled device"
    );
}

/// Sends `packet` and returns the CONNACK's (type byte, body).
fn raw_connack(hub: &Hub, packet: &[u8]) -> (u8, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(hub.mqtt_addr).unwrap();
    stream.set_read_timeout(Some(crate::STEP)).unwrap();
    stream.write_all(packet).unwrap();
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).unwrap();
    let mut body = vec![0u8; usize::from(header[1])];
    stream.read_exact(&mut body).unwrap();
    (header[0], body)
}

/// MQTT 5: reason codes in the CONNACK.
#[test]
fn mqtt_5_connack_reason_codes() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (pid, psk) = runtime.block_on(async {
        let api = hub.client();
        let pid = create_product(&api, "v5-devs", "2").await;
        let psk = psk_of(&create_device(&api, &pid, "v5").await);
        (pid, psk)
    });
    let good = credentials(&pid, "v5", &psk, now() + 600, Sign::Sha256);
    let (kind, body) = raw_connack(&hub, &raw_connect(b"MQTT", 5, &good));
    assert_eq!(kind, 0x20);
    assert_eq!(
        &body[..2],
        [0x00, 0x00],
        "session present 0, reason Success"
    );

    let wrong = fresh(&pid, "v5", "b3RoZXIta2V5LTE2Ynl0ZQ==");
    let (_, body) = raw_connack(&hub, &raw_connect(b"MQTT", 5, &wrong));
    assert_eq!(body[1], 0x86, "Bad User Name or Password");
    let unknown = fresh(&pid, "ghost", &psk);
    let (_, body) = raw_connack(&hub, &raw_connect(b"MQTT", 5, &unknown));
    assert_eq!(body[1], 0x87, "Not authorized");
}

/// MQTT 3.1 (protocol name "MQIsdp", level 3) is what Tencent's Python SDK sends.
#[test]
fn mqtt_3_1_mqisdp_connects() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (pid, psk) = runtime.block_on(async {
        let api = hub.client();
        let pid = create_product(&api, "py-sdk", "2").await;
        let psk = psk_of(&create_device(&api, &pid, "py1").await);
        (pid, psk)
    });
    let creds = credentials(&pid, "py1", &psk, (now() + 600) * 1000, Sign::Sha1);

    let packet = raw_connect(b"MQIsdp", 3, &creds);
    let mut stream = std::net::TcpStream::connect(hub.mqtt_addr).unwrap();
    stream.set_read_timeout(Some(crate::STEP)).unwrap();
    stream.write_all(&packet).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "CONNACK accepted");
    // PINGREQ → PINGRESP on the 3.1 session.
    stream.write_all(&[0xC0, 0x00]).unwrap();
    let mut pingresp = [0u8; 2];
    stream.read_exact(&mut pingresp).unwrap();
    assert_eq!(pingresp, [0xD0, 0x00]);
}

#[tokio::test]
async fn a_second_connection_kicks_the_first() {
    let dir = workdir();
    let hub = Hub::start_with(dir.path(), "", crate::NO_CONNECT_INTERVAL);
    let api = hub.client();
    let pid = create_product(&api, "twins", "2").await;
    let psk = psk_of(&create_device(&api, &pid, "t1").await);
    let creds = fresh(&pid, "t1", &psk);

    let (_first, mut first_loop) = connected(&hub, &creds).await;
    let (second, mut second_loop) = connected(&hub, &creds).await;
    // The first connection is closed by the broker.
    loop {
        match next_incoming(&mut first_loop).await {
            Err(_) => break,
            Ok(Packet::Disconnect) => break,
            Ok(_) => {}
        }
    }
    // The second one works and the device is still online.
    second
        .subscribe(format!("{pid}/t1/control"), rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    match next_incoming(&mut second_loop).await.unwrap() {
        Packet::SubAck(ack) => assert_eq!(
            ack.return_codes,
            [rumqttc::SubscribeReasonCode::Success(
                rumqttc::QoS::AtLeastOnce
            )]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    let d = api
        .call(
            "DescribeDevice",
            &json!({ "ProductId": pid, "DeviceName": "t1" }),
        )
        .await
        .unwrap();
    assert_eq!(
        d["Online"], 1,
        "the kicked connection does not mark the device offline"
    );
}

#[tokio::test]
async fn disabling_resetting_or_deleting_a_device_ends_its_connection() {
    let dir = workdir();
    let hub = Hub::start_with(dir.path(), "", crate::NO_CONNECT_INTERVAL);
    let api = hub.client();
    let pid = create_product(&api, "fleet", "2").await;
    let closed = |mut events: rumqttc::EventLoop| async move {
        loop {
            match next_incoming(&mut events).await {
                Err(_) | Ok(Packet::Disconnect) => break,
                Ok(_) => {}
            }
        }
    };
    let actions = [
        (
            "UpdateDevicesEnableState",
            json!({ "ProductId": pid, "DeviceNames": ["d0"], "Status": 0 }),
        ),
        (
            "ResetDeviceState",
            json!({ "ProductId": pid, "DeviceNames": ["d1"] }),
        ),
        (
            "DeleteDevice",
            json!({ "ProductId": pid, "DeviceName": "d2" }),
        ),
    ];
    for (i, (action, params)) in actions.into_iter().enumerate() {
        let name = format!("d{i}");
        let psk = psk_of(&create_device(&api, &pid, &name).await);
        let (_device, events) = connected(&hub, &fresh(&pid, &name, &psk)).await;
        api.call(action, &params).await.unwrap();
        // The broker closes the connection at once: no keepalive has to run out.
        closed(events).await;
    }
    // A disabled device stays out.
    let psk = psk_of(
        &api.call(
            "DescribeDevice",
            &json!({ "ProductId": pid, "DeviceName": "d0" }),
        )
        .await
        .unwrap(),
    );
    let (_c, mut events) = crate::client(&hub, &fresh(&pid, "d0", &psk));
    match next_incoming(&mut events).await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::ConnectReturnCode::NotAuthorized);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
