//! MQTT over TLS on the TLS listener, driven by Debian's `mosquitto_pub` (OpenSSL): TLS-PSK
//! key devices (Tencent's C SDK style), server-certificate TLS with the HMAC password,
//! and certificate devices with client certificates; and everything that must be refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rumqttc::{AsyncClient, EventLoop, MqttOptions, Packet, QoS};
use serde_json::json;

use crate::{NO_CONNECT_INTERVAL, fresh, next_incoming, support};

/// Open-broker mode, so an anonymous client can watch the devices' topics.
pub const WATCHER: &str = r##"
[mqtt.clients]
enabled = true
anonymous = true

[[mqtt.clients.acl]]
permission = "allow"
action = "all"
topics = ["#"]
"##;

/// An anonymous plain-TCP client subscribed to `filter`.
pub async fn watcher(hub: &support::Hub, filter: &str) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(
        format!("watcher-{}", rand::random::<u32>()),
        hub.mqtt_addr.ip().to_string(),
        hub.mqtt_addr.port(),
    );
    options.set_keep_alive(std::time::Duration::from_secs(60));
    let (client, mut events) = AsyncClient::new(options, 16);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    loop {
        match next_incoming(&mut events).await.unwrap() {
            Packet::SubAck(_) => return (client, events),
            Packet::ConnAck(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The next message the watcher receives: (topic, payload).
pub async fn next_message(events: &mut EventLoop) -> (String, String) {
    loop {
        if let Packet::Publish(p) = next_incoming(events).await.unwrap() {
            return (p.topic, String::from_utf8_lossy(&p.payload).into_owned());
        }
    }
}

/// `mosquitto_pub` with `args`, publishing `message` to `topic` with QoS 1; returns
/// whether it succeeded and what it printed.
async fn mosquitto_pub(port: u16, args: Vec<String>, topic: &str, message: &str) -> (bool, String) {
    let mut command = Command::new("mosquitto_pub");
    command
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-V",
            "mqttv311",
        ])
        .args(["-t", topic, "-m", message])
        .args(args);
    let out = tokio::task::spawn_blocking(move || support::output_within(command))
        .await
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

/// Server-certificate TLS trusting `ca`, with the HMAC password (Tencent's Python SDK).
fn password_args(ca: &str, creds: &crate::DeviceCredentials) -> Vec<String> {
    strings(&[
        "--cafile",
        ca,
        "-i",
        &creds.client_id,
        "-u",
        &creds.username,
        "-P",
        &creds.password,
    ])
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn require_mosquitto_pub() {
    let found = Command::new("mosquitto_pub").arg("--help").output().is_ok();
    assert!(
        found,
        "mosquitto_pub is missing: install Debian's mosquitto-clients (scripts/test does)"
    );
}

/// The development CA the hub generated for its TLS listener.
fn hub_ca(hub: &support::Hub) -> String {
    hub.data_dir.join("tls/ca.pem").display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_psk_and_password_devices_connect_and_wrong_keys_are_refused() {
    require_mosquitto_pub();
    let dir = support::workdir();
    let hub = support::Hub::start_configured(dir.path(), "", WATCHER, NO_CONNECT_INTERVAL);
    let api = hub.client();
    let pid = support::create_product(&api, "tlspsk", "2").await;
    let psk_of = |v: serde_json::Value| v["DevicePsk"].as_str().unwrap().to_owned();
    let psk1 = psk_of(support::create_device(&api, &pid, "dev1").await);
    let psk2 = psk_of(support::create_device(&api, &pid, "dev2").await);
    let hex_key = |psk: &str| hex::encode(BASE64.decode(psk).unwrap());
    let tls = hub.listener("tls").port();
    let (_watch, mut events) = watcher(&hub, &format!("{pid}/+/event")).await;

    // TLS-PSK as Tencent's C SDK does it: identity = ClientId, key = the decoded PSK, a
    // user name and no password.
    let psk_args = |identity: &str, key: &str, client: &str| {
        let username = fresh(&pid, client, &psk1).username;
        strings(&[
            "--psk-identity",
            identity,
            "--psk",
            key,
            "-i",
            &format!("{pid}{client}"),
            "-u",
            &username,
        ])
    };
    let topic1 = format!("{pid}/dev1/event");
    let (ok, out) = mosquitto_pub(
        tls,
        psk_args(&format!("{pid}dev1"), &hex_key(&psk1), "dev1"),
        &topic1,
        "over tls-psk",
    )
    .await;
    assert!(ok, "TLS-PSK publish failed: {out}");
    assert_eq!(
        next_message(&mut events).await,
        (topic1.clone(), "over tls-psk".into())
    );

    // Server-certificate TLS with the HMAC password (Tencent's Python SDK style).
    let creds = fresh(&pid, "dev1", &psk1);
    let (ok, out) = mosquitto_pub(
        tls,
        password_args(&hub_ca(&hub), &creds),
        &topic1,
        "over tls",
    )
    .await;
    assert!(ok, "server-certificate TLS publish failed: {out}");
    assert_eq!(
        next_message(&mut events).await,
        (topic1.clone(), "over tls".into())
    );

    // Refused: a wrong key, another device's key, an identity that is not the ClientId,
    // an unknown device, and a wrong password over server-certificate TLS.
    let wrong = hex::encode([7u8; 16]);
    let refusals = [
        (
            "a wrong PSK",
            psk_args(&format!("{pid}dev1"), &wrong, "dev1"),
        ),
        (
            "dev2's key for dev1",
            psk_args(&format!("{pid}dev1"), &hex_key(&psk2), "dev1"),
        ),
        (
            "dev1's identity, dev2's ClientId",
            psk_args(&format!("{pid}dev1"), &hex_key(&psk1), "dev2"),
        ),
        (
            "an unknown device",
            psk_args(&format!("{pid}nobody"), &hex_key(&psk1), "nobody"),
        ),
    ];
    for (case, args) in refusals {
        let (ok, out) = mosquitto_pub(tls, args, &topic1, case).await;
        assert!(!ok, "{case} was accepted: {out}");
    }
    let mut bad = fresh(&pid, "dev1", &psk2);
    bad.username = fresh(&pid, "dev1", &psk1).username;
    let (ok, out) = mosquitto_pub(
        tls,
        password_args(&hub_ca(&hub), &bad),
        &topic1,
        "wrong password",
    )
    .await;
    assert!(!ok, "a wrong password over TLS was accepted: {out}");

    // A disabled device is refused over TLS-PSK too.
    api.call(
        "UpdateDevicesEnableState",
        &json!({ "ProductId": pid, "DeviceNames": ["dev1"], "Status": 0 }),
    )
    .await
    .unwrap();
    let (ok, out) = mosquitto_pub(
        tls,
        psk_args(&format!("{pid}dev1"), &hex_key(&psk1), "dev1"),
        &topic1,
        "disabled",
    )
    .await;
    assert!(!ok, "a disabled device was accepted: {out}");

    // None of the refused publishes got through: the next message is dev2's.
    let topic2 = format!("{pid}/dev2/event");
    let (ok, out) = mosquitto_pub(
        tls,
        strings(&[
            "--psk-identity",
            &format!("{pid}dev2"),
            "--psk",
            &hex_key(&psk2),
            "-i",
            &format!("{pid}dev2"),
            "-u",
            &fresh(&pid, "dev2", &psk2).username,
        ]),
        &topic2,
        "dev2 over tls-psk",
    )
    .await;
    assert!(ok, "dev2's TLS-PSK publish failed: {out}");
    assert_eq!(
        next_message(&mut events).await,
        (topic2, "dev2 over tls-psk".into())
    );
}

/// Writes a device's certificate and key (from CreateDevice) into `dir`.
fn write_cert(dir: &Path, name: &str, created: &serde_json::Value) -> (String, String) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, created["DeviceCert"].as_str().unwrap()).unwrap();
    std::fs::write(&key, created["DevicePrivateKey"].as_str().unwrap()).unwrap();
    let s = |p: PathBuf| p.display().to_string();
    (s(cert), s(key))
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_devices_connect_with_their_own_certificate_only() {
    require_mosquitto_pub();
    let dir = support::workdir();
    let hub = support::Hub::start_configured(dir.path(), "", WATCHER, NO_CONNECT_INTERVAL);
    let api = hub.client();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let pid = support::create_product(&api, "certprod", "1").await;
    let other = support::create_product(&api, "otherprod", "1").await;
    let c1 = write_cert(
        &certs,
        "c1",
        &support::create_device(&api, &pid, "c1").await,
    );
    let c2 = write_cert(
        &certs,
        "c2",
        &support::create_device(&api, &pid, "c2").await,
    );
    let foreign = write_cert(
        &certs,
        "x1",
        &support::create_device(&api, &other, "c1").await,
    );
    let tls = hub.listener("tls").port();
    let ca = hub_ca(&hub);
    let (_watch, mut events) = watcher(&hub, &format!("{pid}/+/event")).await;

    let cert_args = |(cert, key): &(String, String), client: &str| {
        strings(&[
            "--cafile",
            &ca,
            "--cert",
            cert,
            "--key",
            key,
            "-i",
            &format!("{pid}{client}"),
            // Tencent's SDKs send a user name; the password is not checked.
            "-u",
            &format!("{pid}{client};12010126;aB3x9;{}", support::now() + 3600),
        ])
    };
    let topic1 = format!("{pid}/c1/event");
    let (ok, out) = mosquitto_pub(tls, cert_args(&c1, "c1"), &topic1, "by certificate").await;
    assert!(ok, "client-certificate publish failed: {out}");
    assert_eq!(
        next_message(&mut events).await,
        (topic1.clone(), "by certificate".into())
    );

    // Refused: a sibling's certificate, the same device name's certificate from another
    // product (another CA), no certificate at all, and a revoked (disabled) device.
    let no_cert = strings(&[
        "--cafile",
        &ca,
        "-i",
        &format!("{pid}c1"),
        "-u",
        &format!("{pid}c1;12010126;aB3x9;{}", support::now() + 3600),
        "-P",
        "anything;hmacsha1",
    ]);
    let cases = [
        ("c2's certificate for c1", cert_args(&c2, "c1")),
        ("another product's certificate", cert_args(&foreign, "c1")),
        ("no client certificate", no_cert),
    ];
    for (case, args) in cases {
        let (ok, out) = mosquitto_pub(tls, args, &topic1, case).await;
        assert!(!ok, "{case} was accepted: {out}");
    }
    api.call(
        "UpdateDevicesEnableState",
        &json!({ "ProductId": pid, "DeviceNames": ["c1"], "Status": 0 }),
    )
    .await
    .unwrap();
    let (ok, out) = mosquitto_pub(tls, cert_args(&c1, "c1"), &topic1, "revoked").await;
    assert!(!ok, "a disabled device's certificate was accepted: {out}");

    let topic2 = format!("{pid}/c2/event");
    let (ok, out) = mosquitto_pub(tls, cert_args(&c2, "c2"), &topic2, "c2 by certificate").await;
    assert!(ok, "c2's publish failed: {out}");
    assert_eq!(
        next_message(&mut events).await,
        (topic2, "c2 by certificate".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_certificate_from_eddy_cert_dev_is_served() {
    require_mosquitto_pub();
    let dir = support::workdir();
    let certs = dir.path().join("certs");
    let mut command = Command::new(support::eddy_bin());
    command
        .args(["cert", "dev", "--out"])
        .arg(&certs)
        .args(["--host", "hub.example"]);
    let out = tokio::task::spawn_blocking(move || support::output_within(command))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["ca.pem", "ca.key", "server.pem", "server.key"] {
        assert!(certs.join(file).is_file(), "{file} missing");
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(certs.join("server.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the server key is readable by others: {mode:o}"
    );
    let pem = std::fs::read(certs.join("server.pem")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let names = format!(
        "{:?}",
        cert.subject_alternative_name().unwrap().unwrap().value
    );
    assert!(
        names.contains("hub.example") && names.contains("localhost"),
        "{names}"
    );

    let server_pem = certs.join("server.pem").display().to_string();
    let server_key = certs.join("server.key").display().to_string();
    let env = [
        ("EDDY_MQTT__TLS_CERT", server_pem.as_str()),
        ("EDDY_MQTT__TLS_KEY", server_key.as_str()),
        NO_CONNECT_INTERVAL[0],
    ];
    let hub = support::Hub::start_configured(dir.path(), "", WATCHER, &env);
    assert!(
        !hub.data_dir.join("tls").exists(),
        "no development certificate is generated when one is configured"
    );
    let api = hub.client();
    let pid = support::create_product(&api, "certdev", "2").await;
    let psk = support::create_device(&api, &pid, "d").await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_watch, mut events) = watcher(&hub, &format!("{pid}/+/event")).await;
    let creds = fresh(&pid, "d", &psk);
    let topic = format!("{pid}/d/event");
    let ca = certs.join("ca.pem").display().to_string();
    let (ok, out) = mosquitto_pub(
        hub.listener("tls").port(),
        password_args(&ca, &creds),
        &topic,
        "configured certificate",
    )
    .await;
    assert!(ok, "TLS with the configured certificate failed: {out}");
    assert_eq!(
        next_message(&mut events).await,
        (topic, "configured certificate".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_on_the_tls_and_websocket_listeners_is_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = support::workdir();
    let hub = support::Hub::start_configured(dir.path(), "", WATCHER, NO_CONNECT_INTERVAL);
    // Plain MQTT, an HTTP request, a TLS record header with nothing after it and then the
    // end of input, a ClientHello cut short: each connection is closed by the hub.
    let inputs: [&[u8]; 4] = [
        b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00",
        b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x03",
    ];
    for listener in ["tls", "wss", "ws"] {
        for input in inputs {
            let mut tcp = tokio::net::TcpStream::connect(hub.listener(listener))
                .await
                .unwrap();
            tcp.write_all(input).await.unwrap();
            tcp.shutdown().await.unwrap();
            let mut rest = Vec::new();
            let closed = tokio::time::timeout(crate::STEP, tcp.read_to_end(&mut rest)).await;
            assert!(closed.is_ok(), "{listener}: {input:?} left open");
        }
    }
    // The hub still serves: a watcher connects and subscribes.
    watcher(&hub, "anything/#").await;
}
