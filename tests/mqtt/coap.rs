//! Tencent's CoAP access end to end: raw datagrams for every case of the protocol
//! (authentication, publish, repeated message ids, malformed input, oversize payloads,
//! unknown tokens, forbidden topics), and Debian's `coap-client-openssl` (libcoap) over
//! plain UDP and DTLS-PSK. Messages reach an MQTT subscriber and a topic rule.

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use serde_json::json;
use tokio::net::UdpSocket;

use crate::tls::{WATCHER, next_message, watcher};
use crate::{NO_CONNECT_INTERVAL, STEP, support};

/// A device key whose decoded bytes are printable ASCII with no newline, so it can be
/// given to `coap-client -k` (libcoap 4.3.1 takes the key's raw bytes).
const PRINTABLE_KEY: &[u8] = b"coap-psk-0123456";

/// A CoAP client on an ephemeral loopback port talking to `hub`.
struct Client {
    socket: UdpSocket,
    next_mid: u16,
}

impl Client {
    async fn new(hub_addr: std::net::SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(hub_addr).await.unwrap();
        Self {
            socket,
            next_mid: 0x1000,
        }
    }

    /// A CON POST with a Tencent-style single Uri-Path option.
    fn post(&mut self, path: &str, options: &[(u16, &[u8])], payload: &[u8]) -> Packet {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = MessageClass::Request(RequestType::Post);
        self.next_mid += 1;
        p.header.message_id = self.next_mid;
        p.set_token(vec![1, 0, 0, 0]);
        p.add_option(CoapOption::UriPath, path.as_bytes().to_vec());
        for (number, value) in options {
            p.add_option(CoapOption::Unknown(*number), value.to_vec());
        }
        p.payload = payload.to_vec();
        p
    }

    async fn send_raw(&self, bytes: &[u8]) {
        self.socket.send(bytes).await.unwrap();
    }

    async fn receive(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(STEP, self.socket.recv(&mut buf))
            .await
            .expect("no CoAP answer in time")
            .unwrap();
        buf.truncate(n);
        buf
    }

    /// Sends `request` and returns the answer (which must be its ACK).
    async fn exchange(&self, request: &Packet) -> Packet {
        self.send_raw(&request.to_bytes().unwrap()).await;
        let answer = Packet::from_bytes(&self.receive().await).unwrap();
        assert_eq!(answer.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(answer.header.message_id, request.header.message_id);
        assert_eq!(answer.get_token(), request.get_token());
        answer
    }

    /// Tencent's authentication; returns the token.
    async fn authenticate(&mut self, pid: &str, dn: &str) -> Vec<u8> {
        // The C SDK's payload: "21010406;" + connid, a NUL and one byte of junk.
        let request = self.post(
            &format!("{pid}/{dn}/txauth9w0BAQsFA"),
            &[(62, b"0")],
            b"21010406;Xy9W9\0\x7f",
        );
        let answer = self.exchange(&request).await;
        assert_eq!(code(&answer), ResponseType::Content);
        assert!(!answer.payload.is_empty() && answer.payload.iter().all(u8::is_ascii_alphanumeric));
        answer.payload
    }
}

fn code(packet: &Packet) -> ResponseType {
    match packet.header.code {
        MessageClass::Response(r) => r,
        other => panic!("not a response: {other:?}"),
    }
}

async fn hub_and_devices() -> (
    tempfile::TempDir,
    support::Hub,
    eddy::client::ApiClient,
    String,
) {
    let dir = support::workdir();
    let hub = support::Hub::start_configured(dir.path(), "", WATCHER, NO_CONNECT_INTERVAL);
    let api = hub.client();
    let pid = support::create_product(&api, "coap", "2").await;
    for dn in ["d1", "d2"] {
        api.call(
            "CreateDevice",
            &json!({ "ProductId": pid, "DeviceName": dn, "DefinedPsk": BASE64.encode(PRINTABLE_KEY) }),
        )
        .await
        .unwrap();
    }
    (dir, hub, api, pid)
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_datagrams_follow_tencents_protocol_and_rfc_7252() {
    let (_dir, hub, api, pid) = hub_and_devices().await;
    // A rule sees CoAP messages like MQTT ones: it republishes them.
    let sql = format!("SELECT * FROM '{pid}/+/event'");
    api.call(
        "CreateTopicRule",
        &json!({
            "RuleName": "coap_rule",
            "TopicRulePayload": {
                "Sql": BASE64.encode(sql),
                "Actions": json!([{ "republish": { "topic": "rule/out" } }]).to_string(),
                "RuleDisabled": false,
            },
        }),
    )
    .await
    .unwrap();
    let (_w, mut events) = watcher(&hub, &format!("{pid}/#")).await;
    let (_r, mut rule_out) = watcher(&hub, "rule/out").await;
    let mut c = Client::new(hub.listener("coap")).await;

    // Authentication and a publish, answered with piggybacked 2.05 ACKs.
    let token = c.authenticate(&pid, "d1").await;
    let topic = format!("{pid}/d1/event");
    let publish = c.post(&topic, &[(61, &token), (62, b"1")], br#"{"n":1}"#);
    let answer = c.exchange(&publish).await;
    assert_eq!(code(&answer), ResponseType::Content);
    assert_eq!(
        next_message(&mut events).await,
        (topic.clone(), r#"{"n":1}"#.into())
    );
    assert_eq!(next_message(&mut rule_out).await.1, r#"{"n":1}"#);

    // The same message id again (a retransmission): the same answer, not published twice.
    c.send_raw(&publish.to_bytes().unwrap()).await;
    assert_eq!(c.receive().await, answer.to_bytes().unwrap());

    // Refusals: an unknown token (4.01), another device's topic (4.03), a payload over
    // 1 KB (4.13), a GET (4.05), an unknown device (4.01), a malformed auth payload (4.00),
    // an unrecognised critical option (4.02).
    let cases: Vec<(Packet, ResponseType)> = vec![
        (
            c.post(&topic, &[(61, b"NOTATOKEN0")], b"x"),
            ResponseType::Unauthorized,
        ),
        (c.post(&topic, &[], b"x"), ResponseType::Unauthorized),
        (
            c.post(&format!("{pid}/d2/event"), &[(61, &token)], b"x"),
            ResponseType::Forbidden,
        ),
        (
            c.post(&topic, &[(61, &token)], &[b'x'; 1025]),
            ResponseType::RequestEntityTooLarge,
        ),
        (
            c.post(
                &format!("{pid}/ghost/txauth9w0BAQsFA"),
                &[],
                b"21010406;abcde",
            ),
            ResponseType::Unauthorized,
        ),
        (
            c.post(&format!("{pid}/d1/txauth9w0BAQsFA"), &[], b"no separator"),
            ResponseType::BadRequest,
        ),
        (
            c.post(&topic, &[(61, &token), (9, b"?")], b"x"),
            ResponseType::BadOption,
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(code(&c.exchange(&request).await), expected, "{request:?}");
    }
    let mut get = c.post(&topic, &[(61, &token)], b"");
    get.header.code = MessageClass::Request(RequestType::Get);
    assert_eq!(
        code(&c.exchange(&get).await),
        ResponseType::MethodNotAllowed
    );

    // Malformed: a CON with a token length of 9 is rejected with RST (same message id);
    // bytes that are no CoAP header get nothing; a CoAP ping (empty CON) gets RST.
    c.send_raw(&[0x49, 0x02, 0xAB, 0xCD, 1, 2, 3]).await;
    assert_eq!(c.receive().await, vec![0x70, 0x00, 0xAB, 0xCD]);
    c.send_raw(&[0xFF, 0x00]).await;
    c.send_raw(&[0x40, 0x00, 0x12, 0x34]).await;
    assert_eq!(
        c.receive().await,
        vec![0x70, 0x00, 0x12, 0x34],
        "the garbage got no answer"
    );

    // A NON publish without need-response gets no answer but is published; and after a
    // re-authentication the old token is void.
    let mut non = c.post(&topic, &[(61, &token), (62, b"0")], br#"{"n":2}"#);
    non.header.set_type(MessageType::NonConfirmable);
    c.send_raw(&non.to_bytes().unwrap()).await;
    assert_eq!(
        next_message(&mut events).await,
        (topic.clone(), r#"{"n":2}"#.into())
    );
    let fresh = c.authenticate(&pid, "d1").await;
    assert_ne!(fresh, token);
    let stale = c.post(&topic, &[(61, &token)], b"x");
    assert_eq!(code(&c.exchange(&stale).await), ResponseType::Unauthorized);
    // Nothing refused above reached the subscriber: the next message is this one.
    let last = c.post(&topic, &[(61, &fresh)], br#"{"n":3}"#);
    assert_eq!(code(&c.exchange(&last).await), ResponseType::Content);
    assert_eq!(
        next_message(&mut events).await,
        (topic.clone(), r#"{"n":3}"#.into())
    );
    // The rule saw n = 2 and n = 3 too, and nothing else.
    assert_eq!(next_message(&mut rule_out).await.1, r#"{"n":2}"#);
    assert_eq!(next_message(&mut rule_out).await.1, r#"{"n":3}"#);

    // A disabled device can no longer authenticate.
    api.call(
        "UpdateDevicesEnableState",
        &json!({ "ProductId": pid, "DeviceNames": ["d1"], "Status": 0 }),
    )
    .await
    .unwrap();
    let auth = c.post(&format!("{pid}/d1/txauth9w0BAQsFA"), &[], b"21010406;abcde");
    assert_eq!(code(&c.exchange(&auth).await), ResponseType::Unauthorized);
}

/// Runs `coap-client-openssl` (exit status is always 0: the outcome is in what it prints).
async fn coap_client(args: Vec<String>) -> (String, String) {
    let mut command = Command::new("coap-client-openssl");
    command.args(["-U", "-B", "30", "-m", "post"]).args(args);
    let out = tokio::task::spawn_blocking(move || support::output_within(command))
        .await
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What Eddy's tokens look like: ten ASCII letters and digits.
fn is_token(text: &str) -> bool {
    text.len() == 10 && text.chars().all(|c| c.is_ascii_alphanumeric())
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn libcoap_client_authenticates_and_publishes_over_udp_and_dtls() {
    let found = Command::new("coap-client-openssl")
        .arg("-h")
        .output()
        .is_ok();
    assert!(
        found,
        "coap-client-openssl is missing: install Debian's libcoap3-bin (scripts/test does)"
    );
    let (_dir, hub, _api, pid) = hub_and_devices().await;
    let (_w, mut events) = watcher(&hub, &format!("{pid}/#")).await;
    let key = std::str::from_utf8(PRINTABLE_KEY).unwrap();
    let identity = format!("{pid}d2");
    for (scheme, listener) in [("coap", "coap"), ("coaps", "coap-dtls")] {
        let addr = hub.listener(listener);
        let url = format!("{scheme}://127.0.0.1:{}", addr.port());
        let dtls: Vec<String> = if scheme == "coaps" {
            args(&["-u", &identity, "-k", key])
        } else {
            Vec::new()
        };
        let auth_path = format!("11,{pid}/d2/txauth9w0BAQsFA");
        let (token, err) = coap_client(
            [
                dtls.clone(),
                args(&["-O", &auth_path, "-O", "62,0", "-e", "21010406;abcde", &url]),
            ]
            .concat(),
        )
        .await;
        let token = token.trim().to_owned();
        assert!(is_token(&token), "{scheme}: no token: {token:?} {err}");
        let topic = format!("{pid}/d2/event");
        let payload = format!("via {scheme}");
        let (out, err) = coap_client(
            [
                dtls.clone(),
                args(&[
                    "-O",
                    &format!("11,{topic}"),
                    "-O",
                    &format!("61,{token}"),
                    "-O",
                    "62,1",
                    "-e",
                    &payload,
                    &url,
                ]),
            ]
            .concat(),
        )
        .await;
        assert!(
            !err.contains("4."),
            "{scheme}: publish refused: {out} {err}"
        );
        assert_eq!(next_message(&mut events).await, (topic.clone(), payload));
    }

    // DTLS with a wrong key gets no session, so no token; an unknown token is 4.01.
    let url = format!("coaps://127.0.0.1:{}", hub.listener("coap-dtls").port());
    let (out, err) = coap_client(args(&[
        "-B",
        "5",
        "-u",
        &identity,
        "-k",
        "not-the-key-0000",
        "-O",
        &format!("11,{pid}/d2/txauth9w0BAQsFA"),
        "-O",
        "62,0",
        "-e",
        "21010406;abcde",
        &url,
    ]))
    .await;
    assert!(
        !is_token(out.trim()),
        "a wrong DTLS key got a token: {out:?} {err}"
    );
    let (_, err) = coap_client(args(&[
        "-u",
        &identity,
        "-k",
        key,
        "-O",
        &format!("11,{pid}/d2/event"),
        "-O",
        "61,NOTATOKEN0",
        "-e",
        "x",
        &url,
    ]))
    .await;
    assert!(err.contains("4.01"), "an unknown token was not 4.01: {err}");
}
