//! Persistent sessions: subscriptions and QoS 1 messages kept while the device is away,
//! on disk, through kill -9; sent on reconnect, each until acknowledged.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, EventLoop, Packet, QoS};
use serde_json::json;

use crate::support::{Hub, create_device, create_product, error_code, workdir};
use crate::{
    DeviceCredentials, NO_CONNECT_INTERVAL, STEP, client, fresh, next_incoming, session_client,
};

/// A device's key.
async fn device_psk(api: &eddy::client::ApiClient, pid: &str, name: &str) -> String {
    create_device(api, pid, name).await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Connects with CleanSession = 0; returns the client and whether a session was present.
async fn persistent(hub: &Hub, creds: &DeviceCredentials) -> (AsyncClient, EventLoop, bool) {
    let (client, mut events) = session_client(hub, creds, false);
    let present = match next_incoming(&mut events).await {
        Ok(Packet::ConnAck(ack)) => {
            assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success, "{ack:?}");
            ack.session_present
        }
        other => panic!("expected CONNACK, got {other:?}"),
    };
    (client, events, present)
}

async fn subscribe(client: &AsyncClient, events: &mut EventLoop, filter: &str) {
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    match next_incoming(events).await.unwrap() {
        Packet::SubAck(ack) => assert_eq!(
            ack.return_codes,
            [rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// Disconnects cleanly and waits until the registry shows the device offline (the broker
/// records that once the connection has let go of its session).
async fn leave(
    api: &eddy::client::ApiClient,
    pid: &str,
    name: &str,
    client: AsyncClient,
    mut events: EventLoop,
) {
    client.disconnect().await.unwrap();
    while next_incoming(&mut events).await.is_ok() {}
    let deadline = Instant::now() + STEP;
    loop {
        let d = api
            .call(
                "DescribeDevice",
                &json!({ "ProductId": pid, "DeviceName": name }),
            )
            .await
            .unwrap();
        if d["Online"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{pid}/{name} still online");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn publish_message(
    api: &eddy::client::ApiClient,
    pid: &str,
    name: &str,
    topic: &str,
    payload: &str,
) -> String {
    let result = api
        .call(
            "PublishMessage",
            &json!({
                "ProductId": pid, "DeviceName": name, "Topic": topic,
                "Payload": payload, "Qos": 1,
            }),
        )
        .await;
    match result {
        Ok(_) => "Delivered".to_owned(),
        err => error_code(err),
    }
}

/// The hub's `/metrics` text.
pub async fn metrics(hub: &Hub) -> String {
    reqwest::get(format!("{}/metrics", hub.endpoint))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The next `n` PUBLISH payloads, checking each is QoS 1 on `topic`.
async fn receive(events: &mut EventLoop, topic: &str, n: usize) -> Vec<String> {
    let mut payloads = Vec::new();
    while payloads.len() < n {
        match next_incoming(events).await.unwrap() {
            Packet::Publish(p) => {
                assert_eq!(p.topic, topic);
                assert_eq!(p.qos, QoS::AtLeastOnce);
                payloads.push(String::from_utf8(p.payload.to_vec()).unwrap());
            }
            Packet::PingResp => {}
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
    payloads
}

#[tokio::test]
async fn acknowledged_qos1_messages_survive_kill_9() {
    let dir = workdir();
    let hub = Hub::start_with(dir.path(), "", NO_CONNECT_INTERVAL);
    let api = hub.client();
    let pid = create_product(&api, "meters", "2").await;
    let psk = device_psk(&api, &pid, "m1").await;
    let control = format!("{pid}/m1/control");

    let (device, mut events, present) = persistent(&hub, &fresh(&pid, "m1", &psk)).await;
    assert!(!present, "a first connection has no session");
    subscribe(&device, &mut events, &control).await;
    leave(&api, &pid, "m1", device, events).await;

    // The device is away: each QoS 1 message is stored, and PublishMessage says so.
    for i in 0..5 {
        assert_eq!(
            publish_message(&api, &pid, "m1", &control, &format!("m{i}")).await,
            "LimitExceeded.MessageSaved"
        );
    }
    assert!(
        metrics(&hub).await.contains("eddy_mqtt_queued 5\n"),
        "the queue depth is exported"
    );
    hub.kill9();

    let hub = Hub::start_with(dir.path(), "", NO_CONNECT_INTERVAL);
    let api = hub.client();
    let (device, mut events, present) = persistent(&hub, &fresh(&pid, "m1", &psk)).await;
    assert!(present, "the session survived kill -9");
    assert_eq!(
        receive(&mut events, &control, 5).await,
        ["m0", "m1", "m2", "m3", "m4"]
    );
    // The subscription survived too: a message now is delivered live.
    assert_eq!(
        publish_message(&api, &pid, "m1", &control, "live").await,
        "Delivered"
    );
    assert_eq!(receive(&mut events, &control, 1).await, ["live"]);
    leave(&api, &pid, "m1", device, events).await;

    // Acknowledged messages are gone: after one more stored message, it is all that comes.
    assert_eq!(
        publish_message(&api, &pid, "m1", &control, "last").await,
        "LimitExceeded.MessageSaved"
    );
    let (_device, mut events, present) = persistent(&hub, &fresh(&pid, "m1", &psk)).await;
    assert!(present);
    assert_eq!(receive(&mut events, &control, 1).await, ["last"]);
}

#[tokio::test]
async fn a_clean_session_ends_the_persistent_one() {
    let dir = workdir();
    let hub = Hub::start_with(dir.path(), "", NO_CONNECT_INTERVAL);
    let api = hub.client();
    let pid = create_product(&api, "clean", "2").await;
    let psk = device_psk(&api, &pid, "c1").await;
    let control = format!("{pid}/c1/control");

    let (device, mut events, _) = persistent(&hub, &fresh(&pid, "c1", &psk)).await;
    subscribe(&device, &mut events, &control).await;
    leave(&api, &pid, "c1", device, events).await;
    assert_eq!(
        publish_message(&api, &pid, "c1", &control, "dropped with the session").await,
        "LimitExceeded.MessageSaved"
    );

    // CleanSession = 1 ends the session and its queue.
    let (device, mut events) = client(&hub, &fresh(&pid, "c1", &psk));
    match next_incoming(&mut events).await.unwrap() {
        Packet::ConnAck(ack) => assert!(!ack.session_present),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    leave(&api, &pid, "c1", device, events).await;
    assert_eq!(
        publish_message(&api, &pid, "c1", &control, "x").await,
        "FailedOperation.DeviceOffline"
    );
    let (_device, _events, present) = persistent(&hub, &fresh(&pid, "c1", &psk)).await;
    assert!(!present);
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_the_rest_wait_for_the_rate() {
    let dir = workdir();
    let env = [
        NO_CONNECT_INTERVAL[0],
        ("EDDY_MQTT__OFFLINE_QUEUE_MAX", "25"),
        // Fewer at once than queued: the queue must be paced, never dropped.
        ("EDDY_MQTT__DEVICE_BURST", "3"),
        ("EDDY_MQTT__DEVICE_RATE", "100"),
    ];
    let hub = Hub::start_with(dir.path(), "", &env);
    let api = hub.client();
    let pid = create_product(&api, "queue", "2").await;
    let psk = device_psk(&api, &pid, "q1").await;
    let control = format!("{pid}/q1/control");

    let (device, mut events, _) = persistent(&hub, &fresh(&pid, "q1", &psk)).await;
    subscribe(&device, &mut events, &control).await;
    leave(&api, &pid, "q1", device, events).await;
    for i in 0..30 {
        assert_eq!(
            publish_message(&api, &pid, "q1", &control, &format!("{i}")).await,
            "LimitExceeded.MessageSaved"
        );
    }
    let (_device, mut events, present) = persistent(&hub, &fresh(&pid, "q1", &psk)).await;
    assert!(present);
    let expected: Vec<String> = (5..30).map(|i| i.to_string()).collect();
    assert_eq!(receive(&mut events, &control, 25).await, expected);
    assert_eq!(
        publish_message(&api, &pid, "q1", &control, "after").await,
        "Delivered"
    );
    assert_eq!(receive(&mut events, &control, 1).await, ["after"]);
    let metrics = metrics(&hub).await;
    assert!(
        metrics.contains("eddy_mqtt_dropped_total{reason=\"queue_full\"} 5"),
        "{metrics}"
    );
}
