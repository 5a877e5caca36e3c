//! Topic rules end to end: created with Tencent's CreateTopicRule request shape, fed by
//! real device connections, republishing to another device that receives the output.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rumqttc::{AsyncClient, EventLoop, Packet, QoS};
use serde_json::{Value, json};

use eddy::client::ApiClient;

use crate::support::{Hub, create_device, create_product, workdir};
use crate::{NO_CONNECT_INTERVAL, connected, fresh, next_incoming};

const FAST_DEVICES: &[(&str, &str)] = &[
    ("EDDY_MQTT__DEVICE_RATE", "100000"),
    ("EDDY_MQTT__DEVICE_BURST", "100000"),
];

fn payload(sql: &str, republish_to: &str) -> Value {
    json!({
        "Sql": BASE64.encode(sql),
        "Actions": json!([{ "republish": { "topic": republish_to } }]).to_string(),
        "Description": "alerts for hot devices",
        "RuleDisabled": false,
    })
}

async fn call(api: &ApiClient, action: &str, params: Value) -> Value {
    api.call(action, &params)
        .await
        .unwrap_or_else(|e| panic!("{action}: {e:?}"))
}

/// Publishes JSON at QoS 1 and waits for its PUBACK (by then the rule engine has it).
async fn publish(client: &AsyncClient, events: &mut EventLoop, topic: &str, body: Value) {
    client
        .publish(topic, QoS::AtLeastOnce, false, body.to_string())
        .await
        .unwrap();
    loop {
        if let Packet::PubAck(_) = next_incoming(events).await.unwrap() {
            return;
        }
    }
}

/// The next PUBLISH's payload as JSON, acknowledging it.
async fn received(events: &mut EventLoop) -> (String, Value) {
    loop {
        if let Packet::Publish(p) = next_incoming(events).await.unwrap() {
            return (p.topic.clone(), serde_json::from_slice(&p.payload).unwrap());
        }
    }
}

#[tokio::test]
async fn a_rule_republishes_to_another_device_and_follows_replace_and_disable() {
    let dir = workdir();
    // Tencent's 20 messages/s per device would refuse most of this test's messages.
    let env = [NO_CONNECT_INTERVAL, FAST_DEVICES].concat();
    let hub = Hub::start_with(dir.path(), "", &env);
    let api = hub.client();
    let pid = create_product(&api, "thermo", "2").await;
    let psk = |v: Value| v["DevicePsk"].as_str().unwrap().to_owned();
    let psk_a = psk(create_device(&api, &pid, "a").await);
    let psk_b = psk(create_device(&api, &pid, "b").await);
    let control_b = format!("{pid}/b/control");

    call(
        &api,
        "CreateTopicRule",
        json!({
            "RuleName": "hot_devices",
            "TopicRulePayload": payload(
                &format!("SELECT temp, deviceName() AS dev FROM '{pid}/+/event' WHERE temp > 30"),
                &control_b,
            ),
        }),
    )
    .await;
    // A second rule forwards markers, so "nothing arrived" is proven by what did.
    call(
        &api,
        "CreateTopicRule",
        json!({
            "RuleName": "markers",
            "TopicRulePayload": payload(&format!("SELECT marker FROM '{pid}/+/data'"), &control_b),
        }),
    )
    .await;

    let (b, mut b_events) = connected(&hub, &fresh(&pid, "b", &psk_b)).await;
    b.subscribe(&control_b, QoS::AtLeastOnce).await.unwrap();
    assert!(matches!(
        next_incoming(&mut b_events).await.unwrap(),
        Packet::SubAck(_)
    ));
    let (a, mut a_events) = connected(&hub, &fresh(&pid, "a", &psk_a)).await;
    let event_a = format!("{pid}/a/event");

    for temp in [20, 31, 25, 40] {
        publish(&a, &mut a_events, &event_a, json!({ "temp": temp })).await;
    }
    for temp in [31, 40] {
        assert_eq!(
            received(&mut b_events).await,
            (control_b.clone(), json!({ "temp": temp, "dev": "a" }))
        );
    }

    // Replace while messages flow: every message is evaluated by the old or the new rule,
    // none is lost, and after the replace answers only the new one runs.
    let replace = async {
        call(
            &api,
            "ReplaceTopicRule",
            json!({
                "RuleName": "hot_devices",
                "TopicRulePayload": payload(
                    &format!("SELECT n, temp * 2 AS double FROM '{pid}/+/event' WHERE temp > 30"),
                    &control_b,
                ),
            }),
        )
        .await
    };
    let flow = async {
        for n in 0..40 {
            publish(&a, &mut a_events, &event_a, json!({ "n": n, "temp": 50 })).await;
        }
    };
    tokio::join!(replace, flow);
    let mut seen = Vec::new();
    for _ in 0..40 {
        let (_, row) = received(&mut b_events).await;
        match row.get("n") {
            Some(n) => {
                assert_eq!(row["double"], 100, "{row}");
                seen.push(n.as_u64().unwrap());
            }
            // Evaluated by the old rule: no n, the old shape.
            None => assert_eq!(row, json!({ "temp": 50, "dev": "a" })),
        }
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
    publish(&a, &mut a_events, &event_a, json!({ "n": 99, "temp": 31 })).await;
    assert_eq!(
        received(&mut b_events).await.1,
        json!({ "n": 99, "double": 62 })
    );

    // Disabled: a hot reading is no longer forwarded; the marker after it is.
    call(
        &api,
        "DisableTopicRule",
        json!({ "RuleName": "hot_devices" }),
    )
    .await;
    publish(&a, &mut a_events, &event_a, json!({ "n": 100, "temp": 90 })).await;
    publish(
        &a,
        &mut a_events,
        &format!("{pid}/a/data"),
        json!({ "marker": 1 }),
    )
    .await;
    assert_eq!(received(&mut b_events).await.1, json!({ "marker": 1 }));
    call(
        &api,
        "EnableTopicRule",
        json!({ "RuleName": "hot_devices" }),
    )
    .await;
    publish(&a, &mut a_events, &event_a, json!({ "n": 101, "temp": 33 })).await;
    assert_eq!(
        received(&mut b_events).await.1,
        json!({ "n": 101, "double": 66 })
    );

    // Per-rule counters on /metrics.
    let metrics = crate::sessions::metrics(&hub).await;
    for line in [
        "eddy_rule_matched_total{rule=\"hot_devices\"} 46",
        "eddy_rule_passed_total{rule=\"markers\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    drop((a, b));
}
