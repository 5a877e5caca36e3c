//! RRPC, broadcast, `$sys` time and `$log` level end to end (Tencent §7), with the exact
//! requests Tencent's device SDKs send and the reply shapes they parse.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rumqttc::{Event, Packet, QoS};
use serde_json::{Value, json};

use crate::device::TestDevice;
use crate::support::{self, error_code};
use crate::{STEP, fresh, hub_with_device};

#[tokio::test]
async fn sys_time_and_log_level() {
    let (_dir, hub, api, pid, psk) = hub_with_device("", "clocks").await;
    let mut dev = TestDevice::connect(&hub, &fresh(&pid, "a", &psk)).await;
    let (sys, sys_result) = (
        format!("$sys/operation/{pid}/a"),
        format!("$sys/operation/result/{pid}/a"),
    );
    let (log, log_result) = (
        format!("$log/operation/{pid}/a"),
        format!("$log/operation/result/{pid}/a"),
    );
    dev.subscribe(&sys_result).await;
    dev.subscribe(&log_result).await;

    // The C SDK's time request; the answer in seconds and, for NTP, milliseconds.
    let reply = dev
        .ask(
            &sys,
            &sys_result,
            &json!({"type": "get", "resource": ["time"]}),
        )
        .await;
    let map = reply.as_object().unwrap();
    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "{reply}");
    assert_eq!(reply["type"], "get");
    let time = reply["time"].as_i64().expect("time is an integer");
    let (t1, t2) = (
        reply["ntptime1"].as_i64().expect("ntptime1 is an integer"),
        reply["ntptime2"].as_i64().expect("ntptime2 is an integer"),
    );
    let now = support::now();
    assert!((now - 600..=now + 600).contains(&time), "time {time}");
    assert!(
        t1 <= t2 && t1 / 1000 - time <= 1 && time - t1 / 1000 <= 1,
        "{reply}"
    );

    // The log level: 0 until the management plane sets one.
    let ask_level = json!({"type": "get_log_level", "clientToken": format!("{pid}-1")});
    let reply = dev.ask(&log, &log_result, &ask_level).await;
    assert_eq!(reply["type"], "get_log_level");
    assert_eq!(reply["clientToken"], format!("{pid}-1"));
    assert_eq!(reply["result"], 0);
    assert_eq!(reply["log_level"], 0);
    assert!(reply["timestamp"].is_i64());

    // UpdateDeviceLogLevel tells the connected device at once, in the same shape.
    api.call(
        "UpdateDeviceLogLevel",
        &json!({"ProductId": pid, "DeviceName": "a", "LogLevel": 3}),
    )
    .await
    .unwrap();
    let pushed = dev.receive(&log_result).await;
    assert_eq!(pushed["log_level"], 3);
    assert_eq!(pushed["type"], "get_log_level");
    let reply = dev.ask(&log, &log_result, &ask_level).await;
    assert_eq!(reply["log_level"], 3);
    let described = api
        .call(
            "DescribeDevice",
            &json!({"ProductId": pid, "DeviceName": "a"}),
        )
        .await
        .unwrap();
    assert_eq!(described["LogLevel"], 3);
    assert_eq!(
        error_code(
            api.call(
                "UpdateDeviceLogLevel",
                &json!({"ProductId": pid, "DeviceName": "a", "LogLevel": 5}),
            )
            .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        error_code(
            api.call(
                "UpdateDeviceLogLevel",
                &json!({"ProductId": pid, "DeviceName": "nobody", "LogLevel": 1}),
            )
            .await
        ),
        "ResourceNotFound.DeviceNotExist"
    );
}

/// Calls PublishRRPCMessage while the device answers each request on its txd topic with
/// `answer` (or not at all).
async fn rrpc_call(
    api: &eddy::client::ApiClient,
    dev: &mut TestDevice,
    pid: &str,
    answer: Option<&[u8]>,
) -> (Result<Value, eddy::client::ClientError>, Option<u64>) {
    let call = {
        let api = api.clone();
        let pid = pid.to_owned();
        tokio::spawn(async move {
            api.call(
                "PublishRRPCMessage",
                &json!({"ProductId": pid, "DeviceName": "a", "Payload": "closed?"}),
            )
            .await
        })
    };
    tokio::pin!(call);
    let prefix = format!("$rrpc/rxd/{pid}/a/");
    let mut seen = None;
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        tokio::select! {
            result = &mut call => return (result.unwrap(), seen),
            event = tokio::time::timeout_at(deadline, dev.events.poll()) => {
                let event = event.expect("the RRPC call did not end in time").unwrap();
                if let Event::Incoming(Packet::Publish(p)) = event {
                    let id = p.topic.strip_prefix(&prefix).expect("an RRPC request topic");
                    assert_eq!(&p.payload[..], b"closed?", "the payload arrives raw");
                    seen = Some(id.parse().expect("a numeric process id"));
                    if let Some(answer) = answer {
                        dev.client
                            .publish(format!("$rrpc/txd/{pid}/a/{id}"), QoS::AtMostOnce, false, answer.to_vec())
                            .await
                            .unwrap();
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn rrpc_round_trip_timeout_and_errors() {
    let (_dir, hub, api, pid, psk) =
        hub_with_device("[services]\nrrpc-timeout = \"1s\"\n", "doors").await;
    assert_eq!(
        error_code(
            api.call(
                "PublishRRPCMessage",
                &json!({"ProductId": pid, "DeviceName": "a", "Payload": "x"}),
            )
            .await
        ),
        "FailedOperation.DeviceOffline"
    );

    let mut dev = TestDevice::connect(&hub, &fresh(&pid, "a", &psk)).await;
    assert_eq!(
        error_code(
            api.call(
                "PublishRRPCMessage",
                &json!({"ProductId": pid, "DeviceName": "a", "Payload": "x"}),
            )
            .await
        ),
        "FailedOperation.DeviceNoSubscription"
    );
    dev.subscribe(&format!("$rrpc/rxd/{pid}/a/+")).await;

    // The device answers "ok": MessageId is the process id, the answer comes base64.
    let (answer, id) = rrpc_call(&api, &mut dev, &pid, Some(b"ok")).await;
    let answer = answer.unwrap();
    assert_eq!(answer["PayloadBase64"], "b2s=");
    assert_eq!(answer["MessageId"].as_u64(), id, "{answer}");
    let (answer, next) = rrpc_call(&api, &mut dev, &pid, Some(&[0, 159, 255])).await;
    assert_eq!(
        BASE64
            .decode(answer.unwrap()["PayloadBase64"].as_str().unwrap())
            .unwrap(),
        [0, 159, 255]
    );
    assert_ne!(next, id, "each call has its own process id");

    // A device that never answers: RRPCTimeout after the configured wait.
    let (silent, seen) = rrpc_call(&api, &mut dev, &pid, None).await;
    assert!(seen.is_some(), "the request reached the device");
    assert_eq!(error_code(silent), "FailedOperation.RRPCTimeout");
}

#[tokio::test]
async fn broadcast_reaches_every_online_device() {
    let (_dir, hub, api, pid, psk_a) = hub_with_device("", "sirens").await;
    let psk_of = |v: Value| v["DevicePsk"].as_str().unwrap().to_owned();
    let psk_b = psk_of(support::create_device(&api, &pid, "b").await);
    support::create_device(&api, &pid, "offline").await;
    let other = support::create_product(&api, "others", "2").await;
    let psk_o = psk_of(support::create_device(&api, &other, "a").await);

    let mut a = TestDevice::connect(&hub, &fresh(&pid, "a", &psk_a)).await;
    let mut b = TestDevice::connect(&hub, &fresh(&pid, "b", &psk_b)).await;
    let mut o = TestDevice::connect(&hub, &fresh(&other, "a", &psk_o)).await;
    a.subscribe(&format!("$broadcast/rxd/{pid}/a")).await;
    b.subscribe(&format!("$broadcast/rxd/{pid}/b")).await;
    o.subscribe(&format!("$broadcast/rxd/{other}/a")).await;

    let answer = api
        .call(
            "PublishBroadcastMessage",
            &json!({"ProductId": pid, "Payload": "ZXZhY3VhdGU=", "Qos": 1,
                    "PayloadEncoding": "base64"}),
        )
        .await
        .unwrap();
    assert!(answer["TaskId"].is_i64(), "{answer}");
    for (dev, dn) in [(&mut a, "a"), (&mut b, "b")] {
        assert_eq!(
            dev.receive_raw(&format!("$broadcast/rxd/{pid}/{dn}")).await,
            b"evacuate"
        );
    }
    // Another product's device hears nothing: the next thing it gets is a message of its own.
    api.call(
        "PublishBroadcastMessage",
        &json!({"ProductId": other, "Payload": "own", "Qos": 0}),
    )
    .await
    .unwrap();
    assert_eq!(
        o.receive_raw(&format!("$broadcast/rxd/{other}/a")).await,
        b"own"
    );

    assert_eq!(
        error_code(
            api.call(
                "PublishBroadcastMessage",
                &json!({"ProductId": pid, "Payload": "x", "Qos": 2}),
            )
            .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        error_code(
            api.call(
                "PublishBroadcastMessage",
                &json!({"ProductId": "NOPRODUCT1", "Payload": "x", "Qos": 0}),
            )
            .await
        ),
        "ResourceNotFound.ProductNotExist"
    );
}
