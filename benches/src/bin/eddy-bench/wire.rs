//! The generator's MQTT 3.1.1 client: rmqtt-codec (the hub's own codec) over a plain
//! `TcpStream`, with no client library in between, so that the generator costs far less
//! CPU per message than any broker it drives. Publishers encode many PUBLISHes into one
//! buffer and hand it to the kernel in one write; subscribers decode whatever one read
//! brought and answer every acknowledgement it calls for in one write.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use eddy_benches::{connect_packet, tencent_login};
use rmqtt_codec::types::{Publish, QoS};
use rmqtt_codec::v3::{self, ConnectAckReason, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::{Decoder, Encoder};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where and as whom a connection logs in.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub broker: SocketAddr,
    /// Generic clients (peers, Eddy's open-broker mode): these credentials, if any.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Or Eddy's Tencent key devices: client `n` is device `<prefix><n>`.
    pub tencent: Option<TencentDevices>,
    /// Spread source addresses over 127.0.0.2 … 127.0.0.251 (loopback brokers only), so
    /// that more connections than one address's ephemeral ports can be opened.
    pub spread_sources: bool,
}

/// Key devices of one product, all with the same PSK, named `<prefix>0`, `<prefix>1`, …
#[derive(Debug, Clone)]
pub struct TencentDevices {
    pub product_id: String,
    pub key: Vec<u8>,
    pub prefix: String,
}

impl Endpoint {
    /// ClientId, username and password of client `n` playing `role`: a generic
    /// `bench-<role>-<n>`, or Tencent device n as its SDKs log in.
    fn login(&self, role: &str, n: usize) -> (String, Option<String>, Option<String>) {
        let Some(t) = &self.tencent else {
            return (
                format!("bench-{role}-{n}"),
                self.username.clone(),
                self.password.clone(),
            );
        };
        let login = tencent_login(&t.product_id, &format!("{}{n}", t.prefix), &t.key);
        (login.client_id, Some(login.username), Some(login.password))
    }
}

pub fn wire_qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// One MQTT connection: the socket, the codec and a read buffer.
pub struct Conn {
    pub stream: TcpStream,
    pub codec: v3::Codec,
    pub read_buf: BytesMut,
}

impl Conn {
    /// TCP connect (from source address `nth`), CONNECT (clean session) as client `n` in
    /// `role`, and wait for an accepted CONNACK.
    pub async fn open(
        endpoint: &Endpoint,
        role: &str,
        n: usize,
        keep_alive: u16,
        nth: usize,
    ) -> Result<Self, Error> {
        let (client_id, username, password) = endpoint.login(role, n);
        let stream = tcp_connect(endpoint, nth).await?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            codec: v3::Codec::new(0),
            read_buf: BytesMut::with_capacity(64 * 1024),
        };
        let connect = connect_packet(
            &client_id,
            username.as_deref(),
            password.as_deref(),
            keep_alive,
        );
        conn.stream.write_all(&connect).await?;
        match conn.next().await? {
            Packet::ConnectAck(ack) if ack.return_code == ConnectAckReason::ConnectionAccepted => {
                Ok(conn)
            }
            Packet::ConnectAck(ack) => {
                Err(format!("CONNACK refused: {:?}", ack.return_code).into())
            }
            other => Err(format!("expected CONNACK, got {other:?}").into()),
        }
    }

    pub async fn send(&mut self, packet: Packet) -> Result<(), Error> {
        let mut buf = BytesMut::new();
        self.codec.encode(packet, &mut buf)?;
        self.stream.write_all(&buf).await?;
        Ok(())
    }

    /// The next packet; an error at end of stream.
    pub async fn next(&mut self) -> Result<Packet, Error> {
        loop {
            if let Some((packet, _)) = self.codec.decode(&mut self.read_buf)? {
                return Ok(packet);
            }
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return Err("the broker closed the connection".into());
            }
        }
    }

    /// SUBSCRIBE to one filter and wait for a SUBACK that grants it.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), Error> {
        let packet_id = NonZeroU16::MIN;
        self.send(Packet::Subscribe {
            packet_id,
            topic_filters: vec![(ByteString::from(filter), qos)],
        })
        .await?;
        loop {
            match self.next().await? {
                Packet::SubscribeAck { status, .. } => {
                    return match status.first() {
                        Some(v3::SubscribeReturnCode::Success(_)) => Ok(()),
                        other => Err(format!("SUBACK refused {filter}: {other:?}").into()),
                    };
                }
                // Retained messages or leftovers from an earlier run: not ours to count.
                Packet::Publish(_) => {}
                other => return Err(format!("expected SUBACK, got {other:?}").into()),
            }
        }
    }

    /// DISCONNECT, then wait (bounded) for the broker to close, so that TIME_WAIT stays on
    /// the broker's side and the generator does not run out of ephemeral ports.
    pub async fn close(mut self) {
        if self.send(Packet::Disconnect).await.is_ok() {
            let mut sink = [0u8; 64];
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while matches!(self.stream.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
        }
    }
}

async fn tcp_connect(endpoint: &Endpoint, nth: usize) -> io::Result<TcpStream> {
    if !endpoint.spread_sources || !endpoint.broker.ip().is_loopback() {
        return TcpStream::connect(endpoint.broker).await;
    }
    let socket = match endpoint.broker {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => return TcpStream::connect(endpoint.broker).await,
    };
    // 250 source addresses, each with its own ephemeral port range.
    let last = 2 + (nth % 250) as u8;
    socket.bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
        0,
    ))?;
    socket.connect(endpoint.broker).await
}

/// A QoS 0/1/2 PUBLISH, encoded.
pub fn encode_publish(
    codec: &mut v3::Codec,
    out: &mut BytesMut,
    topic: &ByteString,
    qos: QoS,
    packet_id: Option<NonZeroU16>,
    payload: Bytes,
) -> Result<(), Error> {
    codec.encode(
        Packet::Publish(Box::new(Publish {
            dup: false,
            retain: false,
            qos,
            topic: topic.clone(),
            packet_id,
            payload,
            properties: None,
        })),
        out,
    )?;
    Ok(())
}

/// An acknowledgement packet, encoded.
pub fn encode(codec: &mut v3::Codec, out: &mut BytesMut, packet: Packet) -> Result<(), Error> {
    codec.encode(packet, out)?;
    Ok(())
}
