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
    drop(b);
}
