//! The MQTT broker end to end: Tencent-format credentials computed here (independently of
//! the broker's code), an independent client (rumqttc, MQTT 3.1.1) and raw bytes for
//! MQTT 3.1 ("MQIsdp", what Tencent's Python SDK sends) and MQTT 5.

// Test code: a failed expectation panics with its context.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod clients;
mod coap;
mod device;
mod forward;
mod gateway;
mod groups;
mod kafka;
mod limits;
mod logs;
mod malformed;
mod ota;
mod plugins;
mod register;
mod routing;
mod rules;
mod services;
mod sessions;
mod shadow;
mod sql;
mod tls;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet};

/// For tests that connect one device several times in a row: Tencent's 1 CONNECT per 5 s
/// per device would refuse the later ones.
pub const NO_CONNECT_INTERVAL: &[(&str, &str)] = &[("EDDY_MQTT__DEVICE_CONNECT_INTERVAL", "0s")];

/// Longest any single MQTT step may take on a loaded machine.
pub const STEP: Duration = Duration::from_secs(60);

/// A device's credentials as Tencent's SDKs compute them.
#[derive(Debug)]
pub struct DeviceCredentials {
    pub client_id: String,
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Copy)]
pub enum Sign {
    Sha1,
    Sha256,
}

/// `${ClientId};${sdkappid};${connid};${expiry}` and its HMAC under the decoded PSK.
pub fn credentials(
    product_id: &str,
    device_name: &str,
    psk_base64: &str,
    expiry: i64,
    sign: Sign,
) -> DeviceCredentials {
    let client_id = format!("{product_id}{device_name}");
    let username = format!("{client_id};12010126;aB3x9;{expiry}");
    let key = BASE64.decode(psk_base64).unwrap();
    let (hex_sig, method) = match sign {
        Sign::Sha1 => {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
            mac.update(username.as_bytes());
            (hex::encode(mac.finalize().into_bytes()), "hmacsha1")
        }
        Sign::Sha256 => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
            mac.update(username.as_bytes());
            (hex::encode(mac.finalize().into_bytes()), "hmacsha256")
        }
    };
    DeviceCredentials {
        client_id,
        username,
        password: format!("{hex_sig};{method}"),
    }
}

/// Credentials valid for an hour, in seconds, signed with SHA-1 (the C SDK's choice).
pub fn fresh(product_id: &str, device_name: &str, psk: &str) -> DeviceCredentials {
    credentials(
        product_id,
        device_name,
        psk,
        support::now() + 3600,
        Sign::Sha1,
    )
}

pub fn client(hub: &support::Hub, creds: &DeviceCredentials) -> (AsyncClient, EventLoop) {
    session_client(hub, creds, true)
}

/// A client with CleanSession as given.
pub fn session_client(
    hub: &support::Hub,
    creds: &DeviceCredentials,
    clean_session: bool,
) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(
        &creds.client_id,
        hub.mqtt_addr.ip().to_string(),
        hub.mqtt_addr.port(),
    );
    options.set_credentials(&creds.username, &creds.password);
    options.set_keep_alive(Duration::from_secs(60));
    options.set_clean_session(clean_session);
    // Room for every request a test makes before it polls the event loop.
    AsyncClient::new(options, 64)
}

/// Polls until the next packet from the broker (skipping outgoing events and keepalive
/// pings, which do not extend the [`STEP`] deadline).
pub async fn next_incoming(eventloop: &mut EventLoop) -> Result<Packet, ConnectionError> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Err(_) => panic!("no MQTT packet within {STEP:?}"),
            Ok(Err(err)) => return Err(err),
            Ok(Ok(Event::Incoming(Packet::PingResp) | Event::Outgoing(_))) => {}
            Ok(Ok(Event::Incoming(packet))) => return Ok(packet),
        }
    }
}

/// Connects and returns once the CONNACK arrived.
pub async fn connected(hub: &support::Hub, creds: &DeviceCredentials) -> (AsyncClient, EventLoop) {
    let (client, mut eventloop) = client(hub, creds);
    match next_incoming(&mut eventloop).await {
        Ok(Packet::ConnAck(ack)) => {
            assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success, "{ack:?}");
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    (client, eventloop)
}

/// A CONNECT packet, byte by byte: `level` 3 or 4 (MQTT 3.1 / 3.1.1) or 5 (with an empty
/// property list), username, password, clean session, keepalive 60 s.
pub fn raw_connect(protocol: &[u8], level: u8, creds: &DeviceCredentials) -> Vec<u8> {
    let field = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&u16::try_from(bytes.len()).unwrap().to_be_bytes());
        out.extend_from_slice(bytes);
    };
    let mut body = Vec::new();
    field(&mut body, protocol);
    body.push(level);
    body.push(0b1100_0010); // username, password, clean session
    body.extend_from_slice(&60u16.to_be_bytes());
    if level == 5 {
        body.push(0); // no CONNECT properties
    }
    field(&mut body, creds.client_id.as_bytes());
    field(&mut body, creds.username.as_bytes());
    field(&mut body, creds.password.as_bytes());
    with_fixed_header(0x10, &body)
}

/// A packet: its first byte, the remaining length as MQTT's variable-length integer, then
/// `body`.
pub fn with_fixed_header(first: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = u8::try_from(len % 128).unwrap();
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(body);
    packet
}

/// The dead letters of `queue` once there is at least one, waiting for them (bounded by
/// [`STEP`]); panics naming `what` when none arrive.
pub async fn dead_letters(
    api: &eddy::client::ApiClient,
    queue: &str,
    what: &str,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let listed = api
            .call("ListDeadLetters", &serde_json::json!({ "Queue": queue }))
            .await
            .unwrap();
        if listed["DeadLetters"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
        {
            return listed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dead letter for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A hub whose config ends with `tables` (e.g. `[[destinations]]`), with one key-auth
/// product named `product` and its device "a": the data dir (keep it alive), the hub, an
/// API client, the product id and the device's PSK.
pub async fn hub_with_device(
    tables: &str,
    product: &str,
) -> (
    tempfile::TempDir,
    support::Hub,
    eddy::client::ApiClient,
    String,
    String,
) {
    let dir = support::workdir();
    let hub = support::Hub::start_configured(dir.path(), "", tables, NO_CONNECT_INTERVAL);
    let api = hub.client();
    let pid = support::create_product(&api, product, "2").await;
    let psk = support::create_device(&api, &pid, "a").await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned();
    (dir, hub, api, pid, psk)
}
