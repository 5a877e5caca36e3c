//! Tencent's HTTP forward action end to end: a rule created through the API, a device
//! publishing over MQTT, the built-in `http-forward` plugin posting to an HTTP receiver in
//! this test — then the receiver down under steady load, the hub killed -9 mid-outage and
//! restarted, the receiver back: every message arrives, exactly once after de-duplication
//! by the row id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rumqttc::{AsyncClient, EventLoop, Packet, QoS};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use tokio::sync::Notify;

use crate::support::{Hub, create_device, create_product, workdir};
use crate::{NO_CONNECT_INTERVAL, connected, fresh, next_incoming};
use eddy::client::ApiClient;

const TOKEN: &str = "forward-token";

/// Fast devices and fast retries, so the outage is noticed and ended quickly.
const ENV: &[(&str, &str)] = &[
    ("EDDY_MQTT__DEVICE_RATE", "100000"),
    ("EDDY_MQTT__DEVICE_BURST", "100000"),
    ("EDDY_DELIVERY__RETRY_INITIAL", "20ms"),
    ("EDDY_DELIVERY__RETRY_MAX", "200ms"),
];

#[derive(Default)]
struct Receiver {
    up: AtomicBool,
    /// Answer 400: the plugin rejects the row (no retry).
    reject: AtomicBool,
    refused: AtomicU64,
    /// Row id → (n, body) of every accepted POST; duplicates counted apart.
    accepted: Mutex<BTreeMap<String, (u64, Value)>>,
    duplicates: AtomicU64,
    bad: Mutex<Vec<String>>,
    arrived: Notify,
}

async fn hook(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    if rx.reject.load(Ordering::SeqCst) {
        rx.refused.fetch_add(1, Ordering::SeqCst);
        rx.arrived.notify_waiters();
        return StatusCode::BAD_REQUEST;
    }
    if !rx.up.load(Ordering::SeqCst) {
        rx.refused.fetch_add(1, Ordering::SeqCst);
        rx.arrived.notify_waiters();
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (timestamp, nonce) = (header("Timestamp"), header("Nonce"));
    let mut parts = [TOKEN, timestamp.as_str(), nonce.as_str()];
    parts.sort_unstable();
    if header("Signature") != hex::encode(Sha1::digest(parts.concat().as_bytes())) {
        rx.bad
            .lock()
            .unwrap()
            .push(format!("bad signature: {headers:?}"));
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let n = body["payload"]["n"].as_u64().unwrap_or(u64::MAX);
    let id = header("X-Eddy-Message-Id");
    let mut accepted = rx.accepted.lock().unwrap();
    if accepted.insert(id, (n, body)).is_some() {
        rx.duplicates.fetch_add(1, Ordering::SeqCst);
    }
    drop(accepted);
    rx.arrived.notify_waiters();
    StatusCode::OK
}

async fn start_receiver() -> (Arc<Receiver>, String) {
    let state = Arc::new(Receiver::default());
    state.up.store(true, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, url)
}

/// Waits (≤ 120 s) until `done` holds, woken by each arrival.
async fn until(rx: &Receiver, what: &str, done: impl Fn(&Receiver) -> bool) {
    let wait = async {
        loop {
            let arrived = rx.arrived.notified();
            if done(rx) {
                return;
            }
            arrived.await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn distinct_n(rx: &Receiver) -> BTreeSet<u64> {
    rx.accepted
        .lock()
        .unwrap()
        .values()
        .map(|(n, _)| *n)
        .collect()
}

async fn publish(client: &AsyncClient, events: &mut EventLoop, topic: &str, n: u64) {
    let body = json!({ "n": n, "temp": 20 + n % 10 }).to_string();
    client
        .publish(topic, QoS::AtLeastOnce, false, body)
        .await
        .unwrap();
    loop {
        if let Packet::PubAck(_) = next_incoming(events).await.unwrap() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_posts_tencents_signed_format_and_loses_nothing_through_an_outage_and_kill_9() {
    let (rx, url) = start_receiver().await;
    let dir = workdir();
    let env = [NO_CONNECT_INTERVAL, ENV].concat();
    let hub = Hub::start_with(dir.path(), "", &env);
    let api = hub.client();
    let pid = create_product(&api, "meter", "2").await;
    let psk = create_device(&api, &pid, "a").await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned();
    let topic = format!("{pid}/a/event");
    api.call(
        "CreateTopicRule",
        &json!({
            "RuleName": "to_http",
            "TopicRulePayload": {
                "Sql": BASE64.encode(format!("SELECT n, temp FROM '{pid}/+/event'")),
                "Actions": json!([{ "forward": { "api": url, "token": TOKEN } }]).to_string(),
                "RuleDisabled": false,
            },
        }),
    )
    .await
    .expect("CreateTopicRule");

    // Up: the first ten arrive in Tencent's forward format, signed.
    let (client, mut events) = connected(&hub, &fresh(&pid, "a", &psk)).await;
    for n in 0..10 {
        publish(&client, &mut events, &topic, n).await;
    }
    until(&rx, "the first ten", |rx| distinct_n(rx).len() == 10).await;
    {
        let accepted = rx.accepted.lock().unwrap();
        let (_, body) = accepted.values().find(|(n, _)| *n == 3).expect("n=3");
        assert_eq!(body["devicename"], "a");
        assert_eq!(body["productid"], pid.as_str());
        assert_eq!(body["topic"], topic.as_str());
        assert_eq!(body["payload"], json!({"n": 3, "temp": 23}));
        assert!(body["seq"].is_u64() && body["timestamp"].is_u64(), "{body}");
    }

    // Down under steady load; every message is acknowledged (so durable) all the same.
    rx.up.store(false, Ordering::SeqCst);
    for n in 10..40 {
        publish(&client, &mut events, &topic, n).await;
    }
    until(&rx, "refused attempts", |rx| {
        rx.refused.load(Ordering::SeqCst) >= 3
    })
    .await;
    hub.kill9();

    // Restarted mid-outage; more messages; then the receiver comes back.
    let hub = Hub::start_with(dir.path(), "", &env);
    let (client, mut events) = connected(&hub, &fresh(&pid, "a", &psk)).await;
    for n in 40..50 {
        publish(&client, &mut events, &topic, n).await;
    }
    rx.up.store(true, Ordering::SeqCst);
    until(&rx, "all fifty", |rx| distinct_n(rx).len() == 50).await;
    assert_eq!(distinct_n(&rx), (0..50).collect::<BTreeSet<_>>());
    let ids: Vec<String> = rx.accepted.lock().unwrap().keys().cloned().collect();
    assert_eq!(ids.len(), 50, "one id per message: {ids:?}");
    let bad = rx.bad.lock().unwrap().clone();
    assert!(bad.is_empty(), "{bad:?}");
    drop(client);
    drop(hub);
}

async fn call(api: &ApiClient, action: &str, params: Value) -> Value {
    api.call(action, &params)
        .await
        .unwrap_or_else(|e| panic!("{action}: {e:?}"))
}

/// A row the receiver refuses (400) is not retried: the rule's ErrorActions get it (here a
/// republish to device b), it lands in the dead letters, and a redrive delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_runs_the_error_action_and_is_dead_lettered_then_redriven() {
    let (rx, url) = start_receiver().await;
    let dir = workdir();
    let env = [NO_CONNECT_INTERVAL, ENV].concat();
    let hub = Hub::start_with(dir.path(), "", &env);
    let api = hub.client();
    let pid = create_product(&api, "meter", "2").await;
    let psk = |v: Value| v["DevicePsk"].as_str().unwrap().to_owned();
    let psk_a = psk(create_device(&api, &pid, "a").await);
    let psk_b = psk(create_device(&api, &pid, "b").await);
    call(
        &api,
        "CreateTopicRule",
        json!({
            "RuleName": "to_http",
            "TopicRulePayload": {
                "Sql": BASE64.encode(format!("SELECT n FROM '{pid}/+/event'")),
                "Actions": json!([{ "forward": { "api": url, "token": TOKEN } }]).to_string(),
                "ErrorActions": json!([{ "republish": { "topic": format!("{pid}/b/control") } }]).to_string(),
                "RuleDisabled": false,
            },
        }),
    )
    .await;
    let (b, mut b_events) = connected(&hub, &fresh(&pid, "b", &psk_b)).await;
    b.subscribe(format!("{pid}/b/control"), QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Packet::SubAck(_) = next_incoming(&mut b_events).await.unwrap() {
            break;
        }
    }

    rx.reject.store(true, Ordering::SeqCst);
    let (a, mut a_events) = connected(&hub, &fresh(&pid, "a", &psk_a)).await;
    publish(&a, &mut a_events, &format!("{pid}/a/event"), 7).await;
    // The error action republishes the refused row to b.
    let failed = loop {
        if let Packet::Publish(p) = next_incoming(&mut b_events).await.unwrap() {
            break serde_json::from_slice::<Value>(&p.payload).unwrap();
        }
    };
    assert_eq!(failed, json!({ "n": 7 }));

    let listed = call(
        &api,
        "ListDeadLetters",
        json!({ "Queue": "rule/to_http/0" }),
    )
    .await;
    let letters = listed["DeadLetters"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 1, "{listed}");
    assert_eq!(letters[0]["Rows"], 1);
    assert!(
        letters[0]["Error"].as_str().unwrap().contains("400"),
        "{listed}"
    );
    let seq = letters[0]["Seq"].as_u64().unwrap();
    let shown = call(
        &api,
        "DescribeDeadLetter",
        json!({ "Queue": "rule/to_http/0", "Seq": seq }),
    )
    .await;
    let row = &shown["DeadLetter"]["Rows"][0];
    assert_eq!(row["Payload"], r#"{"n":7}"#);
    assert_eq!(
        (row["DeviceName"].as_str(), row["PayloadIsJson"].as_bool()),
        (Some("a"), Some(true))
    );
    let queues = call(&api, "DescribeDeliveryQueues", json!({})).await;
    assert!(
        queues["Queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["Queue"] == "rule/to_http/0" && q["DeadLetters"] == 1),
        "{queues}"
    );

    // Fixed receiver, redrive: delivered, and the dead letter is gone.
    rx.reject.store(false, Ordering::SeqCst);
    let redriven = call(
        &api,
        "RedriveDeadLetters",
        json!({ "Queue": "rule/to_http/0" }),
    )
    .await;
    assert_eq!(redriven["Redriven"], 1);
    until(&rx, "the redriven row", |rx| distinct_n(rx).contains(&7)).await;
    let listed = call(&api, "ListDeadLetters", json!({})).await;
    assert_eq!(listed["DeadLetters"], json!([]), "{listed}");
    let missing = api
        .call(
            "DescribeDeadLetter",
            &json!({ "Queue": "rule/to_http/0", "Seq": seq }),
        )
        .await;
    assert!(
        format!("{missing:?}").contains("DeadLetterNotExist"),
        "{missing:?}"
    );
    drop((a, b, hub));
}
