//! Tencent's per-device limits: CONNECT interval, message rate, subscriptions, topic shape.

use rumqttc::{ConnectReturnCode, ConnectionError, Packet, QoS, SubscribeReasonCode};
use serde_json::json;

use crate::support::{Hub, create_device, create_product, workdir};
use crate::{client, connected, fresh, next_incoming};

async fn device(hub: &Hub, name: &str) -> (String, String) {
    let api = hub.client();
    let pid = create_product(&api, &format!("{name}-prod"), "2").await;
    let psk = create_device(&api, &pid, name).await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned();
    (pid, psk)
}

#[tokio::test]
async fn a_device_reconnecting_too_soon_is_refused() {
    let dir = workdir();
    // An hour, so that "too soon" holds however slow the machine is.
    let env = [("EDDY_MQTT__DEVICE_CONNECT_INTERVAL", "1h")];
    let hub = Hub::start_with(dir.path(), "", &env);
    let (pid, psk) = device(&hub, "r1").await;
    let creds = fresh(&pid, "r1", &psk);
    let (first, mut first_loop) = connected(&hub, &creds).await;
    first.disconnect().await.unwrap();
    let _ = next_incoming(&mut first_loop).await;

    let (_again, mut again_loop) = client(&hub, &creds);
    match next_incoming(&mut again_loop).await {
        Err(ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, ConnectReturnCode::ServiceUnavailable);
        }
        other => panic!("expected a refused CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn message_rate_is_enforced_up_and_down() {
    let dir = workdir();
    // A burst of 5 and a rate so low that no token comes back during the test.
    let env = [
        ("EDDY_MQTT__DEVICE_RATE", "0.0001"),
        ("EDDY_MQTT__DEVICE_BURST", "5"),
    ];
    let hub = Hub::start_with(dir.path(), "", &env);
    let (pid, psk) = device(&hub, "chatty").await;
    let (dev, mut events) = connected(&hub, &fresh(&pid, "chatty", &psk)).await;
    let topic = format!("{pid}/chatty/data");
    dev.subscribe(topic.clone(), QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(matches!(
        next_incoming(&mut events).await.unwrap(),
        Packet::SubAck(_)
    ));

    for i in 0..20 {
        dev.publish(topic.clone(), QoS::AtLeastOnce, false, format!("m{i}"))
            .await
            .unwrap();
    }
    // Every PUBLISH is acked (MQTT 3 has no refusal code); the broker queues a message's
    // deliveries before its PUBACK, so after the 20th PUBACK every delivery has arrived.
    let (mut acks, mut delivered) = (0, Vec::new());
    while acks < 20 {
        match next_incoming(&mut events).await.unwrap() {
            Packet::PubAck(_) => acks += 1,
            Packet::Publish(p) => delivered.push(String::from_utf8(p.payload.to_vec()).unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        delivered,
        ["m0", "m1", "m2", "m3", "m4"],
        "only the burst went through"
    );
}

#[tokio::test]
async fn subscription_count_and_topic_depth_are_limited() {
    let dir = workdir();
    let env = [("EDDY_MQTT__DEVICE_MAX_SUBSCRIPTIONS", "2")];
    let hub = Hub::start_with(dir.path(), "", &env);
    let (pid, psk) = device(&hub, "deep").await;
    hub.client()
        .call(
            "CreateTopicPolicy",
            &json!({ "ProductId": pid, "TopicName": "x/a/b/c/d", "Privilege": 3 }),
        )
        .await
        .unwrap();
    let (dev, mut events) = connected(&hub, &fresh(&pid, "deep", &psk)).await;
    let rrpc = |id: u32| {
        rumqttc::SubscribeFilter::new(format!("$rrpc/rxd/{pid}/deep/{id}"), QoS::AtMostOnce)
    };
    dev.subscribe_many([rrpc(1), rrpc(2), rrpc(3), rrpc(1)])
        .await
        .unwrap();
    match next_incoming(&mut events).await.unwrap() {
        Packet::SubAck(ack) => assert_eq!(
            ack.return_codes,
            [
                SubscribeReasonCode::Success(QoS::AtMostOnce),
                SubscribeReasonCode::Success(QoS::AtMostOnce),
                SubscribeReasonCode::Failure,
                SubscribeReasonCode::Success(QoS::AtMostOnce),
            ],
            "a third subscription is over the limit; renewing one is not"
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    dev.unsubscribe(format!("$rrpc/rxd/{pid}/deep/2"))
        .await
        .unwrap();
    assert!(matches!(
        next_incoming(&mut events).await.unwrap(),
        Packet::UnsubAck(_)
    ));
    // `${pid}/deep/x/a/b/c/d` has 6 slashes: allowed. A class one level deeper would not be.
    dev.subscribe(format!("{pid}/deep/x/a/b/c/d"), QoS::AtMostOnce)
        .await
        .unwrap();
    match next_incoming(&mut events).await.unwrap() {
        Packet::SubAck(ack) => {
            assert_eq!(
                ack.return_codes,
                [SubscribeReasonCode::Success(QoS::AtMostOnce)]
            );
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn repeated_failed_logins_block_the_address() {
    let dir = workdir();
    let env = [
        ("EDDY_MQTT__AUTH_FAILURE_LIMIT", "3"),
        ("EDDY_MQTT__AUTH_FAILURE_WINDOW", "1h"),
    ];
    let hub = Hub::start_with(dir.path(), "", &env);
    let (pid, psk) = device(&hub, "guarded").await;
    let refused = |creds: crate::DeviceCredentials| {
        let hub = &hub;
        async move {
            let (_c, mut events) = client(hub, &creds);
            match next_incoming(&mut events).await {
                Err(ConnectionError::ConnectionRefused(code)) => code,
                other => panic!("expected a refused CONNACK, got {other:?}"),
            }
        }
    };
    let wrong = "d3Jvbmcta2V5LTE2Ynl0ZQ==";
    for _ in 0..3 {
        assert_eq!(
            refused(fresh(&pid, "guarded", wrong)).await,
            ConnectReturnCode::BadUserNamePassword
        );
    }
    // Now even the right credentials are turned away from this address for the window.
    assert_eq!(
        refused(fresh(&pid, "guarded", &psk)).await,
        ConnectReturnCode::ServiceUnavailable
    );
}
