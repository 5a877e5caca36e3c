//! DTLS 1.2 with PSK on OpenSSL (Tencent's C SDK: `PSK-AES128-CBC-SHA` /
//! `PSK-AES256-CBC-SHA` under mbedTLS; identity `${ProductId}${DeviceName}`, key the
//! decoded device PSK — the same callback as MQTT's TLS-PSK).
//!
//! One UDP socket serves every peer: datagrams are handed to a session task per peer
//! address, whose OpenSSL stream reads exactly one datagram per read and sends one per
//! write ([`DatagramPipe`]). While a handshake is in progress the pipe wakes its task
//! every [`RETRANSMIT_TICK`] so OpenSSL can resend a lost flight (it only does so when
//! re-entered). Sessions end after `dtls-idle-timeout` without a datagram; a new
//! ClientHello from the address of an established session (a rebooted device) replaces it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use eddy_core::DeviceId;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslContext, SslMethod, SslOptions, SslVersion};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::exchange::{Exchanges, Origin};

/// How often a handshake in progress is re-entered so OpenSSL can retransmit.
const RETRANSMIT_TICK: Duration = Duration::from_millis(500);
/// The datagram size OpenSSL is told to stay within.
const MTU: u32 = 1200;
/// Datagrams queued for one session before more are dropped (UDP: the peer resends).
const SESSION_QUEUE: usize = 32;

/// The DTLS server's OpenSSL context and where it leaves the PSK identity.
pub(crate) struct DtlsContext {
    ctx: SslContext,
    identity: Index<Ssl, String>,
}

impl DtlsContext {
    pub(crate) fn new(directory: Arc<dyn eddy_broker::DeviceDirectory>) -> Result<Self, String> {
        let err = |e: openssl::error::ErrorStack| format!("setting up DTLS-PSK: {e}");
        let (mut builder, identity) =
            eddy_broker::transport::psk_context(SslMethod::dtls_server(), directory)
                .map_err(err)?;
        builder
            .set_min_proto_version(Some(SslVersion::DTLS1_2))
            .map_err(err)?;
        // A custom transport cannot be asked for its MTU; each session sets one.
        builder.set_options(SslOptions::NO_QUERY_MTU | SslOptions::NO_TICKET);
        Ok(Self {
            ctx: builder.build(),
            identity,
        })
    }
}

struct Session {
    datagrams: mpsc::Sender<Bytes>,
    established: Arc<AtomicBool>,
    generation: u64,
}

/// Serves DTLS sessions on `socket` for as long as it is polled.
pub(crate) async fn serve(
    exchanges: Arc<Exchanges>,
    socket: UdpSocket,
    context: Arc<DtlsContext>,
    settings: crate::CoapSettings,
) {
    let socket = Arc::new(socket);
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let (ended_tx, mut ended) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
    let mut generation = 0u64;
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            Some((peer, gen_)) = ended.recv() => {
                if sessions.get(&peer).is_some_and(|s| s.generation == gen_) {
                    sessions.remove(&peer);
                }
            }
            received = socket.recv_from(&mut buf) => {
                let (n, peer) = match received {
                    Ok(r) => r,
                    Err(err) => {
                        tracing::warn!(error = %err, "DTLS socket receive failed");
                        continue;
                    }
                };
                let datagram = Bytes::copy_from_slice(&buf[..n]);
                let hello = is_client_hello(&datagram);
                if let Some(session) = sessions.get(&peer) {
                    let replace = hello && session.established.load(Ordering::Acquire);
                    if !replace {
                        // A full queue drops the datagram; the peer retransmits.
                        let _ = session.datagrams.try_send(datagram);
                        continue;
                    }
                    sessions.remove(&peer);
                }
                if !hello || sessions.len() >= settings.max_dtls_sessions {
                    continue;
                }
                generation += 1;
                let (tx, rx) = mpsc::channel(SESSION_QUEUE);
                let _ = tx.try_send(datagram);
                let established = Arc::new(AtomicBool::new(false));
                sessions.insert(peer, Session { datagrams: tx, established: established.clone(), generation });
                let ended_tx = ended_tx.clone();
                let pipe = DatagramPipe { datagrams: rx, socket: socket.clone(), peer, tick: None, handshaking: true };
                let (exchanges, context, settings) = (exchanges.clone(), context.clone(), settings.clone());
                let this_generation = generation;
                tokio::spawn(async move {
                    run_session(exchanges, context, pipe, established, settings).await;
                    let _ = ended_tx.send((peer, this_generation));
                });
            }
        }
    }
}

/// A DTLS 1.2 ClientHello record of epoch 0 (content type 22, handshake type 1).
fn is_client_hello(datagram: &[u8]) -> bool {
    datagram.len() > 13 && datagram[0] == 22 && datagram[3..5] == [0, 0] && datagram[13] == 1
}

async fn run_session(
    exchanges: Arc<Exchanges>,
    context: Arc<DtlsContext>,
    pipe: DatagramPipe,
    established: Arc<AtomicBool>,
    settings: crate::CoapSettings,
) {
    let peer = pipe.peer;
    let failed = |why: &dyn std::fmt::Display| {
        exchanges.metrics.dtls_failed.inc();
        tracing::info!(%peer, error = %why, "DTLS handshake failed");
    };
    let ssl = match Ssl::new(&context.ctx).and_then(|mut ssl| {
        ssl.set_mtu(MTU)?;
        Ok(ssl)
    }) {
        Ok(ssl) => ssl,
        Err(err) => return failed(&err),
    };
    let mut tls = match tokio_openssl::SslStream::new(ssl, pipe) {
        Ok(tls) => tls,
        Err(err) => return failed(&err),
    };
    match tokio::time::timeout(settings.dtls_handshake_timeout, Pin::new(&mut tls).accept()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            exchanges.broker_auth_failed(peer.ip());
            return failed(&err);
        }
        Err(_) => return failed(&"timed out"),
    }
    tls.get_mut().handshaking = false;
    established.store(true, Ordering::Release);
    let device = tls
        .ssl()
        .ex_data(context.identity)
        .and_then(|identity| DeviceId::from_client_id(identity).ok());
    let Some(device) = device else {
        return failed(&"no PSK identity");
    };
    tracing::debug!(%peer, %device, "DTLS session established");
    exchanges.metrics.dtls_sessions.inc();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match tokio::time::timeout(settings.dtls_idle_timeout, tls.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            // Closed, broken, or idle for too long.
            _ => break,
        };
        let origin = Origin {
            peer,
            dtls_device: Some(&device),
        };
        if let Some(answer) = exchanges.handle(&buf[..n], origin).await
            && tls.write_all(&answer).await.is_err()
        {
            break;
        }
    }
    exchanges.metrics.dtls_sessions.dec();
    tracing::debug!(%peer, %device, "DTLS session ended");
}

/// One peer's side of the shared socket, as the byte stream OpenSSL reads and writes:
/// each read is one datagram, each write sends one.
struct DatagramPipe {
    datagrams: mpsc::Receiver<Bytes>,
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    tick: Option<Pin<Box<tokio::time::Sleep>>>,
    handshaking: bool,
}

impl AsyncRead for DatagramPipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.datagrams.poll_recv(cx) {
            Poll::Ready(Some(datagram)) => {
                self.tick = None;
                // OpenSSL reads with room for a whole record; a datagram larger than that
                // is not DTLS and is cut short (and then refused by OpenSSL).
                let n = datagram.len().min(buf.remaining());
                buf.put_slice(&datagram[..n]);
                Poll::Ready(Ok(()))
            }
            // The session was replaced or the server stopped.
            Poll::Ready(None) => Poll::Ready(Ok(())),
            Poll::Pending => {
                if self.handshaking {
                    let tick = self
                        .tick
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(RETRANSMIT_TICK)));
                    if tick.as_mut().poll(cx).is_ready() {
                        // Re-entered, OpenSSL resends its last flight if its timer ran out.
                        self.tick = None;
                        cx.waker().wake_by_ref();
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for DatagramPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.socket.poll_send_to(cx, buf, self.peer)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
