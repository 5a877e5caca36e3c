//! What devices may publish and receive, and that messages arrive.

use rumqttc::{Packet, QoS, SubscribeReasonCode};
use serde_json::json;

use crate::support::{Hub, create_device, create_product, workdir};
use crate::{connected, fresh, next_incoming};

#[tokio::test]
async fn own_topics_route_and_others_are_refused() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    let pid = create_product(&api, "lamps", "2").await;
    let psk_a = create_device(&api, &pid, "a").await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned();
    let psk_b = create_device(&api, &pid, "b").await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned();
    api.call(
        "CreateTopicPolicy",
        &json!({ "ProductId": pid, "TopicName": "custom/both", "Privilege": 3 }),
    )
    .await
    .unwrap();

    let (a, mut a_loop) = connected(&hub, &fresh(&pid, "a", &psk_a)).await;
    let (b, mut b_loop) = connected(&hub, &fresh(&pid, "b", &psk_b)).await;

    // One SUBSCRIBE, five filters: own permitted ones granted, the rest refused.
    a.subscribe_many([
        rumqttc::SubscribeFilter::new(format!("{pid}/a/data"), QoS::AtLeastOnce),
        rumqttc::SubscribeFilter::new(format!("{pid}/a/custom/both"), QoS::AtMostOnce),
        rumqttc::SubscribeFilter::new(format!("{pid}/b/data"), QoS::AtLeastOnce),
        rumqttc::SubscribeFilter::new(format!("{pid}/a/+"), QoS::AtLeastOnce),
        rumqttc::SubscribeFilter::new("#".to_owned(), QoS::AtLeastOnce),
    ])
    .await
    .unwrap();
    match next_incoming(&mut a_loop).await.unwrap() {
        Packet::SubAck(ack) => assert_eq!(
            ack.return_codes,
            [
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::Success(QoS::AtMostOnce),
                SubscribeReasonCode::Failure,
                SubscribeReasonCode::Failure,
                SubscribeReasonCode::Failure,
            ]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }

    // b may not publish on a's topics: acked (MQTT 3 has no refusal code) but not routed.
    b.publish(format!("{pid}/a/data"), QoS::AtLeastOnce, false, "from b")
        .await
        .unwrap();
    loop {
        if let Packet::PubAck(_) = next_incoming(&mut b_loop).await.unwrap() {
            break;
        }
    }
    // a publishes on its own topics; they come back to it in order, and nothing from b
    // arrived before them (b's PUBLISH was fully handled before its PUBACK).
    a.publish(format!("{pid}/a/data"), QoS::AtLeastOnce, false, "one")
        .await
        .unwrap();
    a.publish(
        format!("{pid}/a/custom/both"),
        QoS::AtMostOnce,
        false,
        "two",
    )
    .await
    .unwrap();
    let mut received = Vec::new();
    while received.len() < 2 {
        match next_incoming(&mut a_loop).await.unwrap() {
            Packet::Publish(p) => {
                received.push((
                    p.topic.clone(),
                    String::from_utf8(p.payload.to_vec()).unwrap(),
                    p.qos,
                ));
            }
            Packet::PubAck(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        received,
        [
            (format!("{pid}/a/data"), "one".to_owned(), QoS::AtLeastOnce),
            (
                format!("{pid}/a/custom/both"),
                "two".to_owned(),
                QoS::AtMostOnce
            ),
        ]
    );

    // The counts show on /metrics (Prometheus scrapes it without a signature).
    let metrics = reqwest::get(format!("{}/metrics", hub.endpoint))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "eddy_mqtt_connections 2",
        "eddy_mqtt_messages_in_total 2",
        "eddy_mqtt_messages_out_total 2",
        "eddy_mqtt_publish_refused_total{reason=\"acl\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    drop(b);
}

#[tokio::test]
async fn publish_message_api_reaches_the_device() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    let pid = create_product(&api, "screens", "2").await;
    let psk = create_device(&api, &pid, "s1").await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned();
    create_device(&api, &pid, "s2").await;
    let error_code = crate::support::error_code;

    let send = |topic: String, payload: &str, encoding: &str| {
        let api = api.clone();
        let pid = pid.clone();
        let payload = payload.to_owned();
        let encoding = encoding.to_owned();
        async move {
            api.call(
                "PublishMessage",
                &json!({
                    "ProductId": pid, "DeviceName": "s1", "Topic": topic,
                    "Payload": payload, "Qos": 1, "PayloadEncoding": encoding,
                }),
            )
            .await
        }
    };
    let control = format!("{pid}/s1/control");
    assert_eq!(
        error_code(send(control.clone(), "x", "").await),
        "FailedOperation.DeviceOffline"
    );

    let (device, mut events) = connected(&hub, &fresh(&pid, "s1", &psk)).await;
    device
        .subscribe(control.clone(), QoS::AtLeastOnce)
        .await
        .unwrap();
    match next_incoming(&mut events).await.unwrap() {
        Packet::SubAck(_) => {}
        other => panic!("expected SUBACK, got {other:?}"),
    }
    assert_eq!(
        error_code(send(format!("{pid}/s1/data"), "x", "").await),
        "FailedOperation.DeviceNoSubscription"
    );
    assert_eq!(
        error_code(send(format!("{pid}/s2/control"), "x", "").await),
        "FailedOperation.InvalidTopicName",
        "another device's topic"
    );
    assert_eq!(
        error_code(send(control.clone(), "not base64!", "base64").await),
        "InvalidParameterValue"
    );

    send(control.clone(), "plain text", "").await.unwrap();
    send(control.clone(), "aGVsbG8gZGV2aWNl", "base64")
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        if let Packet::Publish(p) = next_incoming(&mut events).await.unwrap() {
            assert_eq!(p.topic, control);
            got.push(String::from_utf8(p.payload.to_vec()).unwrap());
        }
    }
    assert_eq!(got, ["plain text", "hello device"]);
}
