//! Bad input, byte by byte: each case gets the spec's reaction (a refusing CONNACK, a v5
//! DISCONNECT with a reason, or the connection closed), never a panic, and the broker keeps
//! serving everyone else afterwards.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use crate::support::{Hub, create_device, create_product, workdir};
use crate::{DeviceCredentials, Sign, credentials, raw_connect, with_fixed_header};

/// Reads until the broker closes the connection; returns everything it sent.
fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(crate::STEP)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!(
                "the broker neither answered nor closed within {:?}: {e}",
                crate::STEP
            ),
        }
    }
}

fn send(hub: &Hub, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(hub.mqtt_addr).unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

/// A connection past a successful CONNECT (v3.1.1 or v5).
fn session(hub: &Hub, creds: &DeviceCredentials, level: u8) -> TcpStream {
    let mut stream = send(hub, &raw_connect(b"MQTT", level, creds));
    stream.set_read_timeout(Some(crate::STEP)).unwrap();
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).unwrap();
    let mut body = vec![0u8; usize::from(header[1])];
    stream.read_exact(&mut body).unwrap();
    assert_eq!((header[0], body[1]), (0x20, 0x00), "CONNACK accepted");
    stream
}

fn publish_packet(topic: &[u8], payload_len: usize, v5: bool) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u16::try_from(topic.len()).unwrap().to_be_bytes());
    body.extend_from_slice(topic);
    if v5 {
        body.push(0); // no properties
    }
    body.extend(std::iter::repeat_n(b'x', payload_len));
    with_fixed_header(0x30, &body) // PUBLISH, QoS 0
}

#[test]
fn malformed_input_gets_the_specs_reaction() {
    let dir = workdir();
    // A short CONNECT deadline so the half-open case ends quickly.
    let hub = Hub::start_with(
        dir.path(),
        "",
        &[
            ("EDDY_MQTT__CONNECT_TIMEOUT", "2s"),
            ("EDDY_MQTT__DEVICE_CONNECT_INTERVAL", "0s"),
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (pid, psk) = runtime.block_on(async {
        let api = hub.client();
        let pid = create_product(&api, "fuzzed", "2").await;
        let psk = create_device(&api, &pid, "f1").await["DevicePsk"]
            .as_str()
            .unwrap()
            .to_owned();
        (pid, psk)
    });
    let creds = credentials(&pid, "f1", &psk, crate::support::now() + 3600, Sign::Sha1);

    // Not a CONNECT first: closed.
    assert!(until_closed(&mut send(&hub, &[0xC0, 0x00])).is_empty());
    // A remaining length of five bytes: closed.
    assert!(until_closed(&mut send(&hub, &[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])).is_empty());
    // A CONNECT announcing 200 MB: closed at once, nothing allocated for it.
    assert!(until_closed(&mut send(&hub, &[0x10, 0x80, 0x80, 0x80, 0x60])).is_empty());
    // Unknown protocol name, and a name/level mismatch: CONNACK rc 1, then closed.
    let mut unknown = raw_connect(b"MQTX", 4, &creds);
    assert_eq!(
        until_closed(&mut send(&hub, &unknown)),
        [0x20, 0x02, 0x00, 0x01]
    );
    unknown = raw_connect(b"MQIsdp", 4, &creds);
    assert_eq!(
        until_closed(&mut send(&hub, &unknown)),
        [0x20, 0x02, 0x00, 0x01]
    );
    // Half-open: connected, silent; closed after the CONNECT deadline.
    let mut silent = TcpStream::connect(hub.mqtt_addr).unwrap();
    assert!(until_closed(&mut silent).is_empty());
    // A CONNECT cut in the middle, then silence: closed after the deadline too.
    let full = raw_connect(b"MQTT", 4, &creds);
    assert!(until_closed(&mut send(&hub, &full[..full.len() / 2])).is_empty());

    // Inside a session: wildcards in a PUBLISH topic name.
    let mut s = session(&hub, &creds, 4);
    s.write_all(&publish_packet(format!("{pid}/f1/+").as_bytes(), 1, false))
        .unwrap();
    assert!(until_closed(&mut s).is_empty());
    // Invalid UTF-8 in a topic.
    let mut s = session(&hub, &creds, 4);
    s.write_all(&publish_packet(b"\xC3\x28/x", 1, false))
        .unwrap();
    assert!(until_closed(&mut s).is_empty());
    // A reserved packet type.
    let mut s = session(&hub, &creds, 4);
    s.write_all(&[0xF0, 0x00]).unwrap();
    assert!(until_closed(&mut s).is_empty());
    // MQTT 5: a packet over the size limit gets DISCONNECT 0x95 (packet too large).
    let mut s = session(&hub, &creds, 5);
    s.write_all(&publish_packet(
        format!("{pid}/f1/event").as_bytes(),
        64 * 1024,
        true,
    ))
    .unwrap();
    let sent = until_closed(&mut s);
    assert_eq!(sent.first(), Some(&0xE0), "a DISCONNECT: {sent:02x?}");
    assert!(sent.contains(&0x95), "reason 0x95: {sent:02x?}");
    // MQTT 5: wildcards in a topic name get DISCONNECT 0x90 (topic name invalid).
    let mut s = session(&hub, &creds, 5);
    s.write_all(&publish_packet(b"a/#", 1, true)).unwrap();
    let sent = until_closed(&mut s);
    assert_eq!(sent.first(), Some(&0xE0), "a DISCONNECT: {sent:02x?}");
    assert!(sent.contains(&0x90), "reason 0x90: {sent:02x?}");

    // QoS 2 from a device (Tencent has none): closed, MQTT 5 with 0x9B.
    let mut s = session(&hub, &creds, 5);
    let mut qos2 = publish_packet(format!("{pid}/f1/event").as_bytes(), 1, true);
    qos2[0] = 0x34; // PUBLISH, QoS 2 — needs a packet id after the topic
    let topic_end = 2 + 2 + format!("{pid}/f1/event").len();
    qos2.splice(topic_end..topic_end, [0x00, 0x07]);
    qos2[1] += 2;
    s.write_all(&qos2).unwrap();
    let sent = until_closed(&mut s);
    assert_eq!(sent.first(), Some(&0xE0), "a DISCONNECT: {sent:02x?}");
    assert!(sent.contains(&0x9B), "reason 0x9B: {sent:02x?}");

    // After all that, the broker still serves.
    let mut s = session(&hub, &creds, 4);
    s.write_all(&[0xC0, 0x00]).unwrap();
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong).unwrap();
    assert_eq!(pong, [0xD0, 0x00]);
    let log = hub.log();
    assert!(!log.contains("panicked"), "no task panicked:\n{log}");
}
