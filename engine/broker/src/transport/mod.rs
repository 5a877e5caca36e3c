//! The byte streams MQTT runs over: plain TCP, TLS (server certificate, client
//! certificate, or TLS-PSK on the same port) and WebSocket (ws / wss).
//!
//! ```text
//! TcpListener ─accept─► Listener kind
//!   tcp  ─────────────────────────────────────────────► Connection (no proof)
//!   tls  ─► ClientHello sniff ─┬─ PSK suites ─► OpenSSL ─► Connection (PSK identity)
//!                              └─ otherwise ──► rustls ─► Connection (client cert, if any)
//!   ws   ─► HTTP upgrade on the path, subprotocol mqtt ─► Connection
//!   wss  ─► tls as above ─► HTTP upgrade ─► Connection
//! ```
//!
//! What a transport proved about the client (a PSK identity, a certificate whose key it
//! holds) travels with the stream as [`TransportAuth`]; the CONNECT handshake decides what
//! it means for the device (`connection::handshake`).

mod client_hello;
mod prefixed;
mod psk;
pub mod tls;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use psk::{PSK_CIPHERS, psk_context};
pub use tls::{TlsAcceptor, TlsSettings};
pub use ws::WsSettings;

/// A byte stream an MQTT connection runs over.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// What the transport proved about the client before its CONNECT.
#[derive(Debug, Clone, Default)]
pub enum TransportAuth {
    /// Nothing: plain TCP, WebSocket, or TLS with no client certificate.
    #[default]
    None,
    /// The TLS-PSK handshake succeeded with this identity (`${ProductId}${DeviceName}`)
    /// and that device's key.
    Psk(String),
    /// The client presented this certificate chain (end entity first) and proved it holds
    /// the end entity's private key; whose certificate it is, is checked at CONNECT.
    Certificate(Vec<rustls::pki_types::CertificateDer<'static>>),
}

/// An accepted connection, ready for MQTT.
pub struct Accepted {
    pub(crate) stream: Box<dyn Stream>,
    pub(crate) peer: SocketAddr,
    pub(crate) auth: TransportAuth,
    /// `tcp`, `tls`, `tls-psk`, `ws`, `wss`: for logs and metrics.
    pub(crate) kind: &'static str,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.peer)
            .field("auth", &self.auth)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// How a listener's connections become MQTT byte streams.
#[derive(Debug, Clone)]
pub enum ListenerKind {
    Tcp,
    Tls(Arc<TlsAcceptor>),
    Ws(Arc<WsSettings>),
    Wss(Arc<TlsAcceptor>, Arc<WsSettings>),
}

impl ListenerKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls(_) => "tls",
            Self::Ws(_) => "ws",
            Self::Wss(..) => "wss",
        }
    }

    /// Runs the transport's own handshake on an accepted TCP connection.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> Result<Accepted, TransportError> {
        let _ = tcp.set_nodelay(true);
        match self {
            Self::Tcp => Ok(Accepted {
                stream: Box::new(tcp),
                peer,
                auth: TransportAuth::None,
                kind: "tcp",
            }),
            Self::Tls(tls) => tls.accept(tcp, peer).await,
            Self::Ws(ws) => Ok(Accepted {
                stream: ws::upgrade(tcp, ws).await?,
                peer,
                auth: TransportAuth::None,
                kind: "ws",
            }),
            Self::Wss(tls, ws) => {
                let secured = tls.accept(tcp, peer).await?;
                Ok(Accepted {
                    stream: ws::upgrade(secured.stream, ws).await?,
                    peer,
                    auth: secured.auth,
                    kind: "wss",
                })
            }
        }
    }
}

/// A transport handshake failed; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("reading the connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS handshake: {0}")]
    Tls(String),
    #[error("TLS-PSK handshake: {0}")]
    Psk(String),
    #[error("WebSocket upgrade: {0}")]
    WebSocket(String),
}
