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
use tokio::net::{TcpListener, TcpStream};

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
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.peer)
            .field("auth", &self.auth)
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
            }),
            Self::Tls(tls) => tls.accept(tcp, peer).await,
            Self::Ws(ws) => Ok(Accepted {
                stream: ws::upgrade(tcp, ws).await?,
                peer,
                auth: TransportAuth::None,
            }),
            Self::Wss(tls, ws) => {
                let secured = tls.accept(tcp, peer).await?;
                Ok(Accepted {
                    stream: ws::upgrade(secured.stream, ws).await?,
                    peer,
                    auth: secured.auth,
                })
            }
        }
    }
}

impl crate::Broker {
    pub(crate) async fn accept_loop(self: Arc<Self>, listener: TcpListener, kind: ListenerKind) {
        loop {
            match listener.accept().await {
                Ok((tcp, peer)) => {
                    tokio::spawn(self.clone().serve_connection(kind.clone(), tcp, peer));
                }
                Err(err) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    /// The transport's handshake (TLS, WebSocket upgrade), then MQTT.
    async fn serve_connection(
        self: Arc<Self>,
        kind: ListenerKind,
        tcp: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
    ) {
        let deadline = self.settings.connect_timeout;
        match tokio::time::timeout(deadline, kind.accept(tcp, peer)).await {
            Ok(Ok(accepted)) => crate::connection::serve(self, accepted).await,
            Ok(Err(err)) => {
                // A failed TLS-PSK handshake is a failed authentication.
                if matches!(err, TransportError::Psk(_)) {
                    self.auth_failed(peer.ip());
                }
                self.metrics
                    .transport_failed
                    .get_or_create(&crate::metrics::ListenerLabel {
                        listener: kind.name(),
                    })
                    .inc();
                tracing::info!(%peer, listener = kind.name(), error = %err, "transport handshake failed");
            }
            Err(_) => {
                self.metrics
                    .transport_failed
                    .get_or_create(&crate::metrics::ListenerLabel {
                        listener: kind.name(),
                    })
                    .inc();
                tracing::debug!(%peer, listener = kind.name(), "transport handshake timed out");
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
