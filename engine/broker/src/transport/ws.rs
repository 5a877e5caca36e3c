//! MQTT over WebSocket: the HTTP upgrade on the configured path with the `mqtt`
//! subprotocol, then MQTT bytes carried in binary messages (MQTT 5 §6; Tencent: `/mqtt`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes};
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};

use super::{Stream, TransportError};

/// The WebSocket listeners' settings.
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// The request path clients upgrade on (Tencent: `/mqtt`).
    pub path: String,
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            path: "/mqtt".into(),
        }
    }
}

/// Subprotocol names MQTT clients offer: `mqtt` (MQTT 3.1.1 and 5) and `mqttv3.1`.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Upgrades an HTTP connection to WebSocket and returns its MQTT byte stream.
pub(super) async fn upgrade<S: Stream>(
    stream: S,
    settings: &WsSettings,
) -> Result<Box<dyn Stream>, TransportError> {
    let path = settings.path.clone();
    // tungstenite's callback signature; its error is the HTTP refusal it sends.
    #[allow(clippy::result_large_err)]
    let answer = move |request: &Request, mut response: Response| {
        if request.uri().path() != path {
            let mut refusal = ErrorResponse::new(Some(format!("MQTT is served on {path}\n")));
            *refusal.status_mut() = StatusCode::NOT_FOUND;
            return Err(refusal);
        }
        let offered = request
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|p| SUBPROTOCOLS.iter().any(|s| s.eq_ignore_ascii_case(p)))
            .map(str::to_owned);
        if let Some(protocol) = offered
            && let Ok(value) = HeaderValue::from_str(&protocol)
        {
            response
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", value);
        }
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async(stream, answer)
        .await
        .map_err(|e| TransportError::WebSocket(e.to_string()))?;
    Ok(Box::new(WsBytes {
        ws,
        read: Bytes::new(),
    }))
}

/// A WebSocket as a byte stream: reads concatenate binary messages, each write is one.
struct WsBytes<S> {
    ws: WebSocketStream<S>,
    /// The unread rest of the last binary message.
    read: Bytes,
}

fn ws_error(err: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(err)
}

impl<S: Stream> AsyncRead for WsBytes<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.read.is_empty() {
                let n = self.read.len().min(buf.remaining());
                buf.put_slice(&self.read[..n]);
                self.read.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(self.ws.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(data))) => self.read = data,
                // Control frames: tungstenite answers pings itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "MQTT over WebSocket must use binary messages",
                    )));
                }
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(err)) => return Poll::Ready(Err(ws_error(err))),
            }
        }
    }
}

impl<S: Stream> AsyncWrite for WsBytes<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.ws.poll_ready_unpin(cx)).map_err(ws_error)?;
        self.ws
            .start_send_unpin(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ws.poll_flush_unpin(cx).map_err(ws_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ws.poll_close_unpin(cx).map_err(ws_error)
    }
}
