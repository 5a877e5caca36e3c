//! Eddy's benchmarks live in `benches/`: run `cargo bench -p eddy-benches`. Results, with
//! the machine and the command, go to `BENCHMARKS.md` at the repository root.
//!
//! What the load generators share: Tencent's device login and the MQTT CONNECT.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use hmac::{Hmac, Mac};
use rmqtt_codec::types::Protocol;
use rmqtt_codec::v3;
use sha1::Sha1;
use tokio_util::codec::Encoder;

/// How a Tencent key device logs in over MQTT.
#[derive(Debug, Clone)]
pub struct TencentLogin {
    pub client_id: String,
    pub username: String,
    pub password: String,
}

/// Device `device_name` of `product_id` with its PSK `key`: ClientId = product + name, the
/// username and HMAC-SHA1 password of Tencent's device SDKs
/// (`<ClientId>;<sdkappid>;<connid>;<expiry>`, a far expiry).
pub fn tencent_login(product_id: &str, device_name: &str, key: &[u8]) -> TencentLogin {
    let client_id = format!("{product_id}{device_name}");
    let username = format!("{client_id};12010126;bench;{}", i64::MAX);
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let password = format!("{};hmacsha1", hex::encode(mac.finalize().into_bytes()));
    TencentLogin {
        client_id,
        username,
        password,
    }
}

/// An MQTT 3.1.1 CONNECT (clean session), encoded with the hub's codec.
pub fn connect_packet(
    client_id: &str,
    username: Option<&str>,
    password: Option<&str>,
    keep_alive: u16,
) -> Vec<u8> {
    let connect = v3::Connect {
        protocol: Protocol::default(),
        clean_session: true,
        keep_alive,
        client_id: ByteString::from(client_id),
        username: username.map(ByteString::from),
        password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        ..Default::default()
    };
    let mut out = BytesMut::new();
    v3::Codec::new(0)
        .encode(v3::Packet::Connect(Box::new(connect)), &mut out)
        .expect("a CONNECT within MQTT's size limits encodes");
    out.to_vec()
}
