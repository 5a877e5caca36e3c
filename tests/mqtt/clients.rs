//! Generic MQTT clients (open-broker mode): admission, the topic ACL with placeholders,
//! QoS 2, retained and will messages, shared subscriptions, and a publisher's PUBACK that
//! survives kill -9 — with rumqttc (MQTT 3.1.1) as the client.

use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, EventLoop, LastWill, MqttOptions, Packet, QoS};

use crate::support::{Hub, workdir};
use crate::{STEP, next_incoming};

/// Anonymous clients allowed; everyone may use `open/#`; `%c` gives each client its own
/// subtree where only it may publish (everyone may read all of `own/`); a deny rule
/// carves publishing to `open/locked` out of `open/#`.
const OPEN: &str = r#"
[mqtt.clients]
enabled = true
anonymous = true
"#;

const OPEN_ACL: &str = r#"
[[mqtt.clients.acl]]
permission = "deny"
action = "publish"
topics = ["open/locked"]

[[mqtt.clients.acl]]
permission = "allow"
action = "all"
topics = ["open/#", "own/%c/#"]

[[mqtt.clients.acl]]
permission = "allow"
action = "subscribe"
topics = ["own/#"]
"#;

fn options(hub: &Hub, client_id: &str, clean: bool) -> MqttOptions {
    let mut options = MqttOptions::new(
        client_id,
        hub.mqtt_addr.ip().to_string(),
        hub.mqtt_addr.port(),
    );
    options.set_keep_alive(Duration::from_secs(60));
    options.set_clean_session(clean);
    options
}

/// Connects and returns the client, its event loop and the CONNACK's session-present.
async fn connect(options: MqttOptions) -> (AsyncClient, EventLoop, bool) {
    let (client, mut events) = AsyncClient::new(options, 64);
    match next_incoming(&mut events).await {
        Ok(Packet::ConnAck(ack)) => {
            assert_eq!(ack.code, ConnectReturnCode::Success, "{ack:?}");
            (client, events, ack.session_present)
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

async fn subscribe(client: &AsyncClient, events: &mut EventLoop, filter: &str, qos: QoS) {
    client.subscribe(filter, qos).await.unwrap();
    match next_incoming(events).await.unwrap() {
        Packet::SubAck(ack) => assert_eq!(
            ack.return_codes,
            [rumqttc::SubscribeReasonCode::Success(qos)],
            "{filter}"
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// Polls until the next PUBLISH.
async fn next_publish(events: &mut EventLoop) -> rumqttc::Publish {
    tokio::time::timeout(STEP, next_publish_forever(events))
        .await
        .expect("no PUBLISH in time")
}

async fn next_publish_forever(events: &mut EventLoop) -> rumqttc::Publish {
    loop {
        match next_incoming(events).await.unwrap() {
            Packet::Publish(p) => return p,
            Packet::PingResp
            | Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubRel(_)
            | Packet::PubComp(_) => {}
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

/// Polls until the publisher's acknowledgement of its last PUBLISH arrives.
async fn acknowledged(events: &mut EventLoop) {
    loop {
        match next_incoming(events).await.unwrap() {
            Packet::PubAck(_) | Packet::PubComp(_) => return,
            _ => {}
        }
    }
}

#[tokio::test]
async fn qos2_retained_and_the_acl_for_anonymous_clients() {
    let dir = workdir();
    let hub = Hub::start_configured(dir.path(), "", &format!("{OPEN}{OPEN_ACL}"), &[]);

    let (sub, mut sub_events, _) = connect(options(&hub, "sub", true)).await;
    subscribe(&sub, &mut sub_events, "open/#", QoS::ExactlyOnce).await;
    subscribe(&sub, &mut sub_events, "own/#", QoS::AtLeastOnce).await;
    // Outside every allow rule: refused.
    sub.subscribe("secret/#", QoS::AtMostOnce).await.unwrap();
    match next_incoming(&mut sub_events).await.unwrap() {
        Packet::SubAck(ack) => {
            assert_eq!(ack.return_codes, [rumqttc::SubscribeReasonCode::Failure]);
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }

    let (publisher, mut pub_events, _) = connect(options(&hub, "pub", true)).await;
    publisher
        .publish("open/a", QoS::ExactlyOnce, false, "exactly once")
        .await
        .unwrap();
    acknowledged(&mut pub_events).await;
    let got = next_publish(&mut sub_events).await;
    assert_eq!((got.topic.as_str(), got.qos), ("open/a", QoS::ExactlyOnce));
    assert_eq!(&got.payload[..], b"exactly once");

    // %c: "pub" may publish under own/pub/ only; own/sub/ and the denied open/locked are
    // acknowledged (MQTT 3 has no refusal code) but not routed.
    for refused in ["own/sub/x", "open/locked"] {
        publisher
            .publish(refused, QoS::AtLeastOnce, false, "not mine")
            .await
            .unwrap();
        acknowledged(&mut pub_events).await;
    }
    publisher
        .publish("own/pub/x", QoS::AtLeastOnce, false, "mine")
        .await
        .unwrap();
    acknowledged(&mut pub_events).await;
    let got = next_publish(&mut sub_events).await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("own/pub/x", &b"mine"[..])
    );

    // Retained: kept for later subscribers, replaced by the next, deleted by an empty one.
    publisher
        .publish("open/state", QoS::AtLeastOnce, true, "v1")
        .await
        .unwrap();
    acknowledged(&mut pub_events).await;
    publisher
        .publish("open/state", QoS::AtLeastOnce, true, "v2")
        .await
        .unwrap();
    acknowledged(&mut pub_events).await;
    let (late, mut late_events, _) = connect(options(&hub, "late", true)).await;
    subscribe(&late, &mut late_events, "open/+", QoS::AtLeastOnce).await;
    let got = next_publish(&mut late_events).await;
    assert!(got.retain, "a retained message carries RETAIN=1");
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("open/state", &b"v2"[..])
    );
    assert!(
        crate::sessions::metrics(&hub)
            .await
            .contains("eddy_mqtt_retained 1\n")
    );
    // The live subscriber got both, without RETAIN.
    for expected in ["v1", "v2"] {
        let got = next_publish(&mut sub_events).await;
        assert!(!got.retain);
        assert_eq!(&got.payload[..], expected.as_bytes());
    }
    publisher
        .publish("open/state", QoS::AtLeastOnce, true, "")
        .await
        .unwrap();
    acknowledged(&mut pub_events).await;
    let (later, mut later_events, _) = connect(options(&hub, "later", true)).await;
    subscribe(&later, &mut later_events, "open/+", QoS::AtLeastOnce).await;
    publisher
        .publish("open/after", QoS::AtLeastOnce, false, "first")
        .await
        .unwrap();
    acknowledged(&mut pub_events).await;
    let got = next_publish(&mut later_events).await;
    assert_eq!(
        &got.payload[..],
        b"first",
        "the retained message was deleted"
    );
}

#[tokio::test]
async fn wills_and_shared_subscriptions() {
    let dir = workdir();
    let hub = Hub::start_configured(dir.path(), "", &format!("{OPEN}{OPEN_ACL}"), &[]);
    let (watcher, mut watch_events, _) = connect(options(&hub, "watcher", true)).await;
    subscribe(&watcher, &mut watch_events, "open/will/#", QoS::AtLeastOnce).await;

    // A connection that ends without DISCONNECT publishes its will; a clean one does not.
    let mut dying = options(&hub, "dying", true);
    dying.set_last_will(LastWill::new(
        "open/will/dying",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    let (_dying, dying_events, _) = connect(dying).await;
    drop(dying_events); // the socket closes with no DISCONNECT
    let got = next_publish(&mut watch_events).await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("open/will/dying", &b"gone"[..])
    );

    let mut polite = options(&hub, "polite", true);
    polite.set_last_will(LastWill::new(
        "open/will/polite",
        "x",
        QoS::AtLeastOnce,
        false,
    ));
    let (polite, mut polite_events, _) = connect(polite).await;
    polite.disconnect().await.unwrap();
    while next_incoming(&mut polite_events).await.is_ok() {}

    // A will outside the client's permissions refuses the CONNECT (rc 5).
    let mut bad = options(&hub, "bad", true);
    bad.set_last_will(LastWill::new("secret/x", "x", QoS::AtLeastOnce, false));
    let (_bad, mut bad_events) = AsyncClient::new(bad, 8);
    match next_incoming(&mut bad_events).await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, ConnectReturnCode::NotAuthorized);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Two members of one share get the messages between them, each exactly once.
    let (a, mut a_events, _) = connect(options(&hub, "worker-a", true)).await;
    let (b, mut b_events, _) = connect(options(&hub, "worker-b", true)).await;
    subscribe(
        &a,
        &mut a_events,
        "$share/workers/open/jobs/+",
        QoS::AtLeastOnce,
    )
    .await;
    subscribe(
        &b,
        &mut b_events,
        "$share/workers/open/jobs/+",
        QoS::AtLeastOnce,
    )
    .await;
    let (publisher, mut pub_events, _) = connect(options(&hub, "boss", true)).await;
    for i in 0..10 {
        publisher
            .publish(format!("open/jobs/{i}"), QoS::AtLeastOnce, false, "job")
            .await
            .unwrap();
        acknowledged(&mut pub_events).await;
    }
    // The marker goes to the watcher only; by then every job was handed over.
    publisher
        .publish("open/will/marker", QoS::AtLeastOnce, false, "m")
        .await
        .unwrap();
    acknowledged(&mut pub_events).await;
    let got = next_publish(&mut watch_events).await;
    assert_eq!(
        got.topic, "open/will/marker",
        "the polite client left no will"
    );
    let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
    while from_a.len() + from_b.len() < 10 {
        tokio::select! {
            p = next_publish(&mut a_events) => from_a.push(p.topic),
            p = next_publish(&mut b_events) => from_b.push(p.topic),
        }
    }
    assert_eq!(
        (from_a.len(), from_b.len()),
        (5, 5),
        "{from_a:?} {from_b:?}"
    );
    let mut all: Vec<_> = from_a.into_iter().chain(from_b).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 10, "each job once");
    drop((a, b, watcher));
}

#[tokio::test]
async fn users_with_passwords_and_a_pubacked_message_through_kill_9() {
    let dir = workdir();
    // The hash comes from `eddy passwd`, as an operator would make it.
    let mut passwd = std::process::Command::new(crate::support::eddy_bin());
    passwd.arg("passwd").arg("--password-stdin");
    let hash = {
        use std::io::Write as _;
        passwd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = passwd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let config = format!(
        r#"
[mqtt.clients]
enabled = true

[[mqtt.clients.users]]
username = "app"
password-hash = "{hash}"

[[mqtt.clients.acl]]
permission = "allow"
action = "all"
topics = ["data/#"]
"#
    );
    let hub = Hub::start_configured(dir.path(), "", &config, &[]);

    // No username (anonymous is off) and a wrong password are refused.
    let (_c, mut events) = AsyncClient::new(options(&hub, "anon", true), 8);
    match next_incoming(&mut events).await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, ConnectReturnCode::NotAuthorized);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut wrong = options(&hub, "wrong", true);
    wrong.set_credentials("app", "guess");
    let (_c, mut events) = AsyncClient::new(wrong, 8);
    match next_incoming(&mut events).await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, ConnectReturnCode::BadUserNamePassword);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    let as_app = |id: &str, clean: bool| {
        let mut o = options(&hub, id, clean);
        o.set_credentials("app", "s3cret");
        o
    };
    // A persistent subscriber leaves; a publisher's QoS 1 messages are PUBACKed.
    let (sub, mut sub_events, _) = connect(as_app("store", false)).await;
    subscribe(&sub, &mut sub_events, "data/#", QoS::AtLeastOnce).await;
    sub.disconnect().await.unwrap();
    while next_incoming(&mut sub_events).await.is_ok() {}
    let (publisher, mut pub_events, _) = connect(as_app("sensor", true)).await;
    // All twenty in flight at once: their PUBACKs share fsyncs and come back in order.
    for i in 0..20 {
        publisher
            .publish("data/t", QoS::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    let mut acked = Vec::new();
    while acked.len() < 20 {
        if let Packet::PubAck(ack) = next_incoming(&mut pub_events).await.unwrap() {
            acked.push(ack.pkid);
        }
    }
    assert_eq!(acked, (1..=20).collect::<Vec<u16>>());
    drop(publisher);
    hub.kill9();

    let hub = Hub::start_configured(dir.path(), "", &config, &[]);
    let mut o = options(&hub, "store", false);
    o.set_credentials("app", "s3cret");
    let (_sub, mut sub_events, present) = connect(o).await;
    assert!(present);
    for i in 0..20 {
        let got = tokio::time::timeout(STEP, next_publish(&mut sub_events))
            .await
            .unwrap();
        assert_eq!(&got.payload[..], i.to_string().as_bytes());
    }
}

#[tokio::test]
async fn generic_client_limits_apply_when_configured() {
    let dir = workdir();
    let config = format!(
        "{OPEN}max-packet-bytes = 200\nrate = 0.001\nburst = 2\nmax-subscriptions = 1\n\
         connect-interval = \"1h\"\nmax-qos = 1\n{OPEN_ACL}"
    );
    let hub = Hub::start_configured(dir.path(), "", &config, &[]);

    let (client, mut events, _) = connect(options(&hub, "limited", true)).await;
    // One CONNECT per ClientId per hour.
    let (_again, mut again_events) = AsyncClient::new(options(&hub, "limited", true), 8);
    match next_incoming(&mut again_events).await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, ConnectReturnCode::ServiceUnavailable);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // QoS 2 is granted as 1; a second subscription is refused.
    client
        .subscribe_many([
            rumqttc::SubscribeFilter::new("open/a".into(), QoS::ExactlyOnce),
            rumqttc::SubscribeFilter::new("open/b".into(), QoS::AtMostOnce),
        ])
        .await
        .unwrap();
    match next_incoming(&mut events).await.unwrap() {
        Packet::SubAck(ack) => assert_eq!(
            ack.return_codes,
            [
                rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce),
                rumqttc::SubscribeReasonCode::Failure
            ]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    // A burst of two, then the rate (one per 1000 s) refuses the third.
    for i in 0..3 {
        client
            .publish("open/a", QoS::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    let mut received = Vec::new();
    let mut acks = 0;
    while acks < 3 || received.len() < 2 {
        match next_incoming(&mut events).await.unwrap() {
            Packet::PubAck(_) => acks += 1,
            Packet::Publish(p) => received.push(p.payload),
            _ => {}
        }
    }
    assert_eq!(received, [&b"0"[..], &b"1"[..]]);
    let metrics = crate::sessions::metrics(&hub).await;
    assert!(
        metrics.contains("eddy_mqtt_publish_refused_total{reason=\"rate\"} 1\n"),
        "{metrics}"
    );
    // Over max-packet-bytes: the connection is closed.
    client
        .publish("open/a", QoS::AtMostOnce, false, vec![b'x'; 300])
        .await
        .unwrap();
    loop {
        match next_incoming(&mut events).await {
            Err(_) | Ok(Packet::Disconnect) => break,
            Ok(_) => {}
        }
    }
}
