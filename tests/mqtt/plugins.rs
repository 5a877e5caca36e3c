//! Configured destinations end to end: `[[destinations]]` naming a `.wasm` file (the
//! hostile test plugin, built by the plugin host's build script), rule actions
//! `{"plugin":{"name":…}}`. A plugin that spins forever is contained — quarantined,
//! restarted, its batch retried — while another destination of the same rule keeps
//! delivering; a plugin calling outside its grants gets a permission error, and its batch
//! lands in the dead letters with it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rumqttc::{Packet, QoS};
use serde_json::{Value, json};

use eddy::client::ApiClient;

use crate::sessions::metrics;
use crate::support::{Hub, create_device, create_product, workdir};
use crate::{NO_CONNECT_INTERVAL, connected, fresh, next_incoming};

async fn call(api: &ApiClient, action: &str, params: Value) -> Value {
    api.call(action, &params)
        .await
        .unwrap_or_else(|e| panic!("{action}: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_plugins_run_contained_and_within_their_grants() {
    let dir = workdir();
    let env = [
        NO_CONNECT_INTERVAL,
        &[
            ("EDDY_DELIVERY__RETRY_INITIAL", "20ms"),
            ("EDDY_DELIVERY__RETRY_MAX", "100ms"),
            // The grant violation is permanent; nothing else should give up.
            ("EDDY_DELIVERY__RETRY_FOR", "10m"),
            ("EDDY_PLUGINS__CPU_TIME", "200ms"),
        ],
    ]
    .concat();
    // First start: the product and devices, whose ids the destinations' config names.
    let hub = Hub::start_with(dir.path(), "", &env);
    let api = hub.client();
    let pid = create_product(&api, "plug", "2").await;
    let psk = |v: Value| v["DevicePsk"].as_str().unwrap().to_owned();
    let psk_a = psk(create_device(&api, &pid, "a").await);
    let psk_b = psk(create_device(&api, &pid, "b").await);
    drop(hub);

    // plugins/hostile for wasm32-wasip2, built by the plugin host's build script.
    let wasm = eddy_plugin_host::builtin::HOSTILE_FIXTURE.to_owned();
    let control = format!("{pid}/b/control");
    let tables = format!(
        r#"
[[destinations]]
name = "copy"
plugin = {wasm:?}
config = {{ mode = "ok", topic = {control:?} }}
[destinations.grants]
mqtt-topics = [{control:?}]

[[destinations]]
name = "spinner"
plugin = {wasm:?}
config = {{ mode = "spin" }}

[[destinations]]
name = "sneaky"
plugin = {wasm:?}
config = {{ mode = "grant" }}
[destinations.grants]
mqtt-topics = [{control:?}]
"#
    );
    let hub = Hub::start_configured(dir.path(), "", &tables, &env);
    let api = hub.client();
    let errors = format!("{pid}/b/data");
    let rule = |name: &str, actions: Value| {
        json!({
            "RuleName": name,
            "TopicRulePayload": {
                "Sql": BASE64.encode(format!("SELECT n FROM '{pid}/+/event'")),
                "Actions": actions.to_string(),
                // Rows an action gives up on are republished here: the test's signal that
                // the dead letter is written (the same commit).
                "ErrorActions": json!([{ "republish": { "topic": errors } }]).to_string(),
                "RuleDisabled": false,
            },
        })
    };
    call(
        &api,
        "CreateTopicRule",
        rule(
            "contained",
            json!([{ "plugin": { "name": "spinner" } }, { "plugin": { "name": "copy" } }]),
        ),
    )
    .await;
    call(
        &api,
        "CreateTopicRule",
        rule("sneaky", json!([{ "plugin": { "name": "sneaky" } }])),
    )
    .await;

    let (b, mut b_events) = connected(&hub, &fresh(&pid, "b", &psk_b)).await;
    for topic in [&control, &errors] {
        b.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
        loop {
            if let Packet::SubAck(_) = next_incoming(&mut b_events).await.unwrap() {
                break;
            }
        }
    }
    let (a, mut a_events) = connected(&hub, &fresh(&pid, "a", &psk_a)).await;
    for n in 0..5 {
        a.publish(
            format!("{pid}/a/event"),
            QoS::AtLeastOnce,
            false,
            json!({ "n": n }).to_string(),
        )
        .await
        .unwrap();
        loop {
            if let Packet::PubAck(_) = next_incoming(&mut a_events).await.unwrap() {
                break;
            }
        }
    }
    // The copy destination delivers every row while its sibling spins and is restarted;
    // the sneaky one's rows come back through its rule's error action.
    let (mut copied, mut failed) = (Vec::new(), Vec::new());
    while copied.len() < 5 || failed.len() < 5 {
        if let Packet::Publish(p) = next_incoming(&mut b_events).await.unwrap() {
            let n = serde_json::from_slice::<Value>(&p.payload).unwrap()["n"]
                .as_u64()
                .unwrap();
            if p.topic == control {
                copied.push(n);
            } else {
                failed.push(n);
            }
        }
    }
    copied.sort_unstable();
    failed.sort_unstable();
    assert_eq!(copied, [0, 1, 2, 3, 4]);
    assert_eq!(failed, [0, 1, 2, 3, 4]);

    // The grant violation: the plugin saw a permission error and gave up on the batch,
    // which is in the dead letters with that error.
    let listed = call(&api, "ListDeadLetters", json!({ "Queue": "rule/sneaky/0" })).await;
    let letters = listed["DeadLetters"].as_array().unwrap().clone();
    assert!(!letters.is_empty(), "{listed}");
    let rows: u64 = letters.iter().map(|l| l["Rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, 5, "{listed}");
    let error = letters[0]["Error"].as_str().unwrap();
    assert!(
        error.contains("PermissionDenied") && error.contains("not/granted"),
        "{error}"
    );

    // The spinner's traps are counted (it traps 200 ms of its own CPU time after each
    // start, so wait for the counter, bounded); the hub is still serving.
    let deadline = std::time::Instant::now() + crate::STEP;
    loop {
        let text = metrics(&hub).await;
        let traps = text
            .lines()
            .find(|l| l.starts_with("eddy_plugin_traps_total{destination=\"rule/contained/0\"}"))
            .unwrap_or_else(|| panic!("no trap counter:\n{text}"))
            .to_owned();
        if !traps.ends_with(" 0") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the spinner never trapped: {traps}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop((a, b, hub));
}
