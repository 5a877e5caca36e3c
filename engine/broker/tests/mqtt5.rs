//! MQTT 5 for generic clients, with rumqttc's v5 client: subscription options (no-local,
//! retain-as-published, retain handling, identifiers), forwarded PUBLISH properties,
//! inbound topic aliases, message expiry, will delay.

// Test code: a failed expectation panics with its context.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{STEP, open_broker};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    Filter, LastWill, LastWillProperties, Packet, Publish, PublishProperties, RetainForwardRule,
    SubscribeProperties,
};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

fn options(addr: SocketAddr, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(60));
    o
}

async fn next_packet(events: &mut EventLoop) -> Packet {
    loop {
        match tokio::time::timeout(STEP, events.poll())
            .await
            .expect("in time")
        {
            Ok(Event::Incoming(packet)) => return packet,
            Ok(Event::Outgoing(_)) => {}
            Err(err) => panic!("connection failed: {err:?}"),
        }
    }
}

async fn connect(options: MqttOptions) -> (AsyncClient, EventLoop) {
    let (client, events, _) = connect_acked(options).await;
    (client, events)
}

/// Connects; also returns the CONNACK.
async fn connect_acked(
    options: MqttOptions,
) -> (AsyncClient, EventLoop, rumqttc::v5::mqttbytes::v5::ConnAck) {
    let (client, mut events) = AsyncClient::new(options, 64);
    match next_packet(&mut events).await {
        Packet::ConnAck(ack) => (client, events, ack),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// A connected client subscribed to `filter` at QoS 1.
async fn subscribed(addr: SocketAddr, id: &str, filter: &str) -> (AsyncClient, EventLoop) {
    let (client, mut events) = connect(options(addr, id)).await;
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    until_ack(&mut events, true).await;
    (client, events)
}

/// Polls until the next PUBLISH, skipping acks.
async fn next_publish(events: &mut EventLoop) -> Publish {
    loop {
        match next_packet(events).await {
            Packet::Publish(p) => return p,
            Packet::SubAck(_) | Packet::PubAck(_) | Packet::PingResp(_) => {}
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

/// Polls until a SUBACK (or PUBACK, for `what`).
async fn until_ack(events: &mut EventLoop, suback: bool) {
    loop {
        match next_packet(events).await {
            Packet::SubAck(_) if suback => return,
            Packet::PubAck(_) if !suback => return,
            Packet::Publish(p) => panic!("unexpected PUBLISH {p:?}"),
            _ => {}
        }
    }
}

fn filter(path: &str, nolocal: bool, rap: bool, rule: RetainForwardRule) -> Filter {
    let mut f = Filter::new(path, QoS::AtLeastOnce);
    f.nolocal = nolocal;
    f.preserve_retain = rap;
    f.retain_forward_rule = rule;
    f
}

#[tokio::test]
async fn subscription_options_and_forwarded_properties() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = open_broker(dir.path()).await;
    let (me, mut me_events) = connect(options(addr, "me")).await;
    let (other, mut other_events) = connect(options(addr, "other")).await;
    me.subscribe_with_properties(
        "t/#",
        QoS::AtLeastOnce,
        SubscribeProperties {
            id: Some(7),
            user_properties: Vec::new(),
        },
    )
    .await
    .unwrap();
    until_ack(&mut me_events, true).await;
    // Again with options, replacing it: no-local and retain-as-published.
    me.subscribe_many_with_properties(
        [filter(
            "t/#",
            true,
            true,
            RetainForwardRule::OnEverySubscribe,
        )],
        SubscribeProperties {
            id: Some(7),
            user_properties: Vec::new(),
        },
    )
    .await
    .unwrap();
    until_ack(&mut me_events, true).await;
    // No-local too, so that "other" never sees its own messages here.
    other
        .subscribe_many([filter("t/#", true, false, RetainForwardRule::Never)])
        .await
        .unwrap();
    until_ack(&mut other_events, true).await;

    let properties = PublishProperties {
        content_type: Some("text/plain".into()),
        response_topic: Some("r/1".into()),
        correlation_data: Some(Bytes::from_static(b"c1")),
        user_properties: vec![("k".into(), "v".into())],
        message_expiry_interval: Some(100),
        payload_format_indicator: Some(1),
        ..Default::default()
    };
    me.publish_with_properties("t/a", QoS::AtLeastOnce, true, "hello", properties)
        .await
        .unwrap();
    until_ack(&mut me_events, false).await;
    let got = next_publish(&mut other_events).await;
    assert_eq!(
        (&got.topic[..], &got.payload[..]),
        (&b"t/a"[..], &b"hello"[..])
    );
    assert!(!got.retain, "no retain-as-published: RETAIN cleared");
    let p = got.properties.unwrap();
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.response_topic.as_deref(), Some("r/1"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"c1"[..]));
    assert_eq!(p.user_properties, [("k".to_owned(), "v".to_owned())]);
    assert_eq!(p.payload_format_indicator, Some(1));
    let left = p.message_expiry_interval.unwrap();
    assert!((1..=100).contains(&left), "{left}");
    assert!(p.subscription_identifiers.is_empty());

    // No-local: "me" did not get its own message; the first it gets is other's, with
    // its subscription identifier, and RETAIN kept (retain-as-published).
    other
        .publish("t/b", QoS::AtLeastOnce, true, "from other")
        .await
        .unwrap();
    until_ack(&mut other_events, false).await;
    let got = next_publish(&mut me_events).await;
    assert_eq!(&got.topic[..], b"t/b");
    assert!(got.retain);
    assert_eq!(got.properties.unwrap().subscription_identifiers, [7]);

    // Retain handling: 2 sends nothing, 1 only for a new subscription, 0 always.
    let (late, mut late_events) = connect(options(addr, "late")).await;
    late.subscribe_many([filter("t/#", false, false, RetainForwardRule::Never)])
        .await
        .unwrap();
    until_ack(&mut late_events, true).await;
    late.subscribe_many([filter(
        "t/a",
        false,
        false,
        RetainForwardRule::OnNewSubscribe,
    )])
    .await
    .unwrap();
    let got = next_publish(&mut late_events).await;
    assert_eq!((&got.topic[..], got.retain), (&b"t/a"[..], true));
    late.subscribe_many([filter(
        "t/a",
        false,
        false,
        RetainForwardRule::OnNewSubscribe,
    )])
    .await
    .unwrap();
    until_ack(&mut late_events, true).await;
    late.subscribe_many([filter(
        "t/b",
        false,
        false,
        RetainForwardRule::OnEverySubscribe,
    )])
    .await
    .unwrap();
    let got = next_publish(&mut late_events).await;
    assert_eq!(
        &got.topic[..],
        b"t/b",
        "nothing for the repeated OnNewSubscribe"
    );
}

#[tokio::test]
async fn topic_aliases_and_message_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = open_broker(dir.path()).await;
    let (_sub, mut sub_events) = subscribed(addr, "sub", "x/#").await;

    let (alias, mut alias_events) = connect(options(addr, "alias")).await;
    let with_alias = |a| PublishProperties {
        topic_alias: Some(a),
        ..Default::default()
    };
    alias
        .publish_with_properties("x/1", QoS::AtLeastOnce, false, "set", with_alias(3))
        .await
        .unwrap();
    until_ack(&mut alias_events, false).await;
    alias
        .publish_with_properties("", QoS::AtLeastOnce, false, "used", with_alias(3))
        .await
        .unwrap();
    until_ack(&mut alias_events, false).await;
    for payload in ["set", "used"] {
        let got = next_publish(&mut sub_events).await;
        assert_eq!(
            (&got.topic[..], &got.payload[..]),
            (&b"x/1"[..], payload.as_bytes())
        );
    }
    // An alias over the CONNACK's Topic Alias Maximum ends the connection (0x94).
    alias
        .publish_with_properties("x/2", QoS::AtLeastOnce, false, "bad", with_alias(1000))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(STEP, alias_events.poll())
            .await
            .unwrap()
        {
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                assert_eq!(
                    d.reason_code,
                    rumqttc::v5::mqttbytes::v5::DisconnectReasonCode::TopicAliasInvalid
                );
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }

    // A persistent session away while a message with a one-second expiry ages out.
    let mut keep = options(addr, "keeper");
    keep.set_clean_start(false);
    keep.set_session_expiry_interval(Some(300));
    let (keeper, mut keeper_events) = connect(keep.clone()).await;
    keeper.subscribe("x/q/#", QoS::AtLeastOnce).await.unwrap();
    until_ack(&mut keeper_events, true).await;
    keeper.disconnect().await.unwrap();
    while keeper_events.poll().await.is_ok() {}
    let (publisher, mut pub_events) = connect(options(addr, "pub")).await;
    let expiring = PublishProperties {
        message_expiry_interval: Some(1),
        ..Default::default()
    };
    publisher
        .publish_with_properties("x/q/1", QoS::AtLeastOnce, false, "gone", expiring)
        .await
        .unwrap();
    until_ack(&mut pub_events, false).await;
    publisher
        .publish("x/q/2", QoS::AtLeastOnce, false, "kept")
        .await
        .unwrap();
    until_ack(&mut pub_events, false).await;
    // Not synchronisation: the expiry is a span of real time that has to pass.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_keeper, mut keeper_events) = connect(keep).await;
    let got = next_publish(&mut keeper_events).await;
    assert_eq!(
        &got.payload[..],
        b"kept",
        "the expired message was not delivered"
    );
}

#[tokio::test]
async fn a_will_waits_for_its_delay_and_a_quick_return_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = open_broker(dir.path()).await;
    let (watcher, mut watch_events) = subscribed(addr, "watcher", "w/#").await;

    let will = |topic: &str| {
        LastWill::new(
            topic,
            "bye",
            QoS::AtLeastOnce,
            false,
            Some(LastWillProperties {
                delay_interval: Some(1),
                payload_format_indicator: None,
                message_expiry_interval: None,
                content_type: None,
                response_topic: None,
                correlation_data: None,
                user_properties: Vec::new(),
            }),
        )
    };
    // Comes back within the delay: the will is discarded.
    let mut back = options(addr, "back");
    back.set_last_will(will("w/back"));
    back.set_clean_start(false);
    back.set_session_expiry_interval(Some(60));
    let (first, first_events) = connect(back.clone()).await;
    drop((first, first_events));
    let (_again, _again_events) = connect(back).await;
    // Gone for good: the will follows after its delay.
    let mut gone = options(addr, "gone");
    gone.set_last_will(will("w/gone"));
    let (c, e) = connect(gone).await;
    drop((c, e));
    let got = next_publish(&mut watch_events).await;
    assert_eq!(&got.topic[..], b"w/gone");
    // By now the delay of "back"'s will has passed too (both were one second, and
    // "back" dropped first): a marker proves nothing else came.
    tokio::time::sleep(Duration::from_millis(500)).await;
    watcher
        .publish("w/marker", QoS::AtLeastOnce, false, "m")
        .await
        .unwrap();
    let got = next_publish(&mut watch_events).await;
    assert_eq!(&got.topic[..], b"w/marker");
}

#[tokio::test]
async fn receive_maximum_and_maximum_packet_size_are_respected() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = open_broker(dir.path()).await;
    let mut slow = options(addr, "slow");
    slow.set_receive_maximum(Some(2));
    slow.set_max_packet_size(Some(200));
    slow.set_manual_acks(true);
    let (sub, mut sub_events) = connect(slow).await;
    sub.subscribe("s/#", QoS::AtLeastOnce).await.unwrap();
    until_ack(&mut sub_events, true).await;

    let (publisher, mut pub_events) = connect(options(addr, "fast")).await;
    publisher
        .publish("s/big", QoS::AtLeastOnce, false, vec![b'x'; 500])
        .await
        .unwrap();
    until_ack(&mut pub_events, false).await;
    for i in 0..5 {
        publisher
            .publish(format!("s/{i}"), QoS::AtLeastOnce, false, "m")
            .await
            .unwrap();
        until_ack(&mut pub_events, false).await;
    }
    // QoS 0 is outside the window: it overtakes the three QoS 1 messages held back.
    publisher
        .publish("s/marker", QoS::AtMostOnce, false, "m")
        .await
        .unwrap();
    // (A QoS 1 PUBLISH after it, to nobody, so that the client's event loop sends both.)
    publisher
        .publish("nobody", QoS::AtLeastOnce, false, "")
        .await
        .unwrap();
    until_ack(&mut pub_events, false).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_publish(&mut sub_events).await);
    }
    let topics: Vec<&[u8]> = got.iter().map(|p| &p.topic[..]).collect();
    assert_eq!(
        topics,
        [&b"s/0"[..], b"s/1", b"s/marker"],
        "the 500-byte message exceeds the client's maximum packet size; two in flight at most"
    );
    // Each ack opens the window for one more.
    for (ack, next) in [(0, "s/2"), (1, "s/3")] {
        sub.ack(&got[ack]).await.unwrap();
        let p = next_publish(&mut sub_events).await;
        assert_eq!(&p.topic[..], next.as_bytes());
        got.push(p);
    }
}

#[tokio::test]
async fn a_generic_client_asking_too_long_a_keepalive_is_told_the_servers() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = open_broker(dir.path()).await;
    let mut long = options(addr, "sleepy");
    long.set_keep_alive(Duration::from_secs(3600));
    let (_c, _e, ack) = connect_acked(long).await;
    assert_eq!(
        ack.properties.unwrap().server_keep_alive,
        Some(900),
        "Tencent's 900 s limit, announced rather than refused"
    );
}

#[tokio::test]
async fn clean_start_0_without_expiry_resumes_the_session_for_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = open_broker(dir.path()).await;
    let persistent = |expiry| {
        let mut o = options(addr, "resumer");
        o.set_clean_start(false);
        o.set_session_expiry_interval(expiry);
        o
    };
    let leave = |client: AsyncClient, mut events: EventLoop| async move {
        client.disconnect().await.unwrap();
        while events.poll().await.is_ok() {}
    };
    let (client, mut events) = connect(persistent(Some(300))).await;
    client.subscribe("r/#", QoS::AtLeastOnce).await.unwrap();
    until_ack(&mut events, true).await;
    leave(client, events).await;

    let (publisher, mut pub_events) = connect(options(addr, "rpub")).await;
    publisher
        .publish("r/1", QoS::AtLeastOnce, false, "kept")
        .await
        .unwrap();
    until_ack(&mut pub_events, false).await;

    // Clean Start 0, no expiry: the session is there, with its message …
    let (client, mut events, ack) = connect_acked(persistent(None)).await;
    assert!(ack.session_present);
    assert_eq!(&next_publish(&mut events).await.payload[..], b"kept");
    leave(client, events).await;
    // … and ends with that connection.
    let (_client, _events, ack) = connect_acked(persistent(Some(300))).await;
    assert!(!ack.session_present);
}

/// MQTT 3.1.1 packets by hand, for what a library client hides (a QoS 2 resend).
mod raw {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    fn packet(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![first, u8::try_from(body.len()).unwrap()];
        out.extend_from_slice(body);
        out
    }

    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
        out.extend_from_slice(s);
    }

    /// Connects with CleanSession = 0 and reads the CONNACK.
    pub async fn connect(addr: std::net::SocketAddr, id: &str) -> TcpStream {
        let mut body = Vec::new();
        string(&mut body, b"MQTT");
        body.extend_from_slice(&[4, 0b0000_0000, 0, 60]);
        string(&mut body, id.as_bytes());
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&packet(0x10, &body)).await.unwrap();
        let mut connack = [0u8; 4];
        s.read_exact(&mut connack).await.unwrap();
        assert_eq!(connack[3], 0, "accepted");
        s
    }

    pub fn publish_qos2(topic: &str, id: u16, dup: bool, payload: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        string(&mut body, topic.as_bytes());
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(payload);
        packet(if dup { 0x3C } else { 0x34 }, &body)
    }

    /// Sends `bytes` and reads one 4-byte ack (PUBREC 0x50 / PUBCOMP 0x70).
    pub async fn exchange(s: &mut TcpStream, bytes: &[u8]) -> [u8; 4] {
        s.write_all(bytes).await.unwrap();
        let mut ack = [0u8; 4];
        s.read_exact(&mut ack).await.unwrap();
        ack
    }
}

#[tokio::test]
async fn a_qos2_publish_resent_after_a_reconnect_is_routed_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = open_broker(dir.path()).await;
    let (_watcher, mut watch_events) = subscribed(addr, "q2-watch", "d/#").await;

    let mut first = raw::connect(addr, "q2-pub").await;
    let rec = raw::exchange(&mut first, &raw::publish_qos2("d/x", 7, false, b"once")).await;
    assert_eq!(rec, [0x50, 2, 0, 7], "PUBREC");
    drop(first); // gone before its PUBREL
    let mut second = raw::connect(addr, "q2-pub").await;
    let rec = raw::exchange(&mut second, &raw::publish_qos2("d/x", 7, true, b"once")).await;
    assert_eq!(rec, [0x50, 2, 0, 7], "PUBREC again, for the resend");
    let comp = raw::exchange(&mut second, &[0x62, 2, 0, 7]).await;
    assert_eq!(comp, [0x70, 2, 0, 7], "PUBCOMP");
    let rec = raw::exchange(&mut second, &raw::publish_qos2("d/marker", 8, false, b"m")).await;
    assert_eq!(rec[0], 0x50);
    let got = next_publish(&mut watch_events).await;
    assert_eq!(&got.payload[..], b"once");
    let got = next_publish(&mut watch_events).await;
    assert_eq!(
        &got.payload[..],
        b"m",
        "the resent PUBLISH was not routed again"
    );
}
