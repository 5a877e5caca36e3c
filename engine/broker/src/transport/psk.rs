//! TLS-PSK on OpenSSL: key devices (Tencent's C SDK) prove their device key in the TLS
//! handshake. The PSK identity is the ClientId `${ProductId}${DeviceName}`, the PSK the
//! device's base64-decoded key; TLS 1.2 PSK suites (Tencent's `PSK-AES128-CBC-SHA` and
//! `PSK-AES256-CBC-SHA`, the GCM/CCM/ChaCha20 forms) and TLS 1.3 with an external PSK.
//!
//! OpenSSL asks for the key from inside the handshake, synchronously; the registry is
//! asynchronous. The lookup therefore runs with `block_in_place` on the multi-threaded
//! runtime (the one `eddy serve` runs on): the connection's worker thread waits for one
//! registry read while the runtime moves its other tasks elsewhere.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use eddy_core::DeviceId;
use eddy_core::secret::ExposeSecret as _;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslMethod, SslVersion};
use tokio::runtime::{Handle, RuntimeFlavor};

use super::{Stream, TransportError};
use crate::DeviceDirectory;

/// OpenSSL cipher string: every suite with a PSK key exchange and no certificate.
/// Tencent's PSK-AES128-CBC-SHA / PSK-AES256-CBC-SHA are in it and pass Debian's default
/// security level.
pub const PSK_CIPHERS: &str = "PSK:ECDHEPSK:DHEPSK:!RSAPSK:!aNULL:!eNULL";

pub(super) struct PskAcceptor {
    ctx: SslContext,
    /// Where the PSK callback leaves the identity it accepted.
    identity: Index<Ssl, String>,
}

/// An OpenSSL context for `method` (TLS or DTLS) whose PSK callback gives each device its
/// key from `directory`, and where the callback leaves the identity it accepted. Shared
/// with CoAP's DTLS-PSK.
pub fn psk_context(
    method: SslMethod,
    directory: Arc<dyn DeviceDirectory>,
) -> Result<(SslContextBuilder, Index<Ssl, String>), ErrorStack> {
    let identity = Ssl::new_ex_index::<String>()?;
    let mut builder = SslContext::builder(method)?;
    builder.set_cipher_list(PSK_CIPHERS)?;
    builder.set_psk_server_callback(move |ssl, claimed, out| {
        let Some(claimed) = claimed.and_then(|c| std::str::from_utf8(c).ok()) else {
            return Ok(0);
        };
        match device_key(directory.as_ref(), claimed) {
            Some(key) if key.len() <= out.len() => {
                out[..key.len()].copy_from_slice(&key);
                ssl.set_ex_data(identity, claimed.to_owned());
                Ok(key.len())
            }
            // Unknown, disabled or certificate device: the handshake fails
            // (unknown_psk_identity / decrypt_error).
            _ => Ok(0),
        }
    });
    Ok((builder, identity))
}

impl PskAcceptor {
    pub(super) fn new(directory: Arc<dyn DeviceDirectory>) -> Result<Self, String> {
        let err = |e: ErrorStack| format!("setting up TLS-PSK: {e}");
        let (mut builder, identity) =
            psk_context(SslMethod::tls_server(), directory).map_err(err)?;
        builder
            .set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(err)?;
        Ok(Self {
            ctx: builder.build(),
            identity,
        })
    }

    /// Runs the TLS-PSK handshake; returns the stream and the proven identity.
    pub(super) async fn accept<S: Stream>(
        &self,
        stream: S,
    ) -> Result<(Box<dyn Stream>, String), TransportError> {
        let failed = |e: &dyn std::fmt::Display| TransportError::Psk(e.to_string());
        let ssl = Ssl::new(&self.ctx).map_err(|e| failed(&e))?;
        let mut tls = tokio_openssl::SslStream::new(ssl, stream).map_err(|e| failed(&e))?;
        std::pin::Pin::new(&mut tls)
            .accept()
            .await
            .map_err(|e| failed(&e))?;
        let identity = tls
            .ssl()
            .ex_data(self.identity)
            .cloned()
            .ok_or_else(|| failed(&"the handshake ended without a PSK identity"))?;
        Ok((Box::new(tls), identity))
    }
}

/// The key of the enabled key device named by a PSK identity, from the registry.
fn device_key(directory: &dyn DeviceDirectory, identity: &str) -> Option<Vec<u8>> {
    let device = DeviceId::from_client_id(identity).ok()?;
    let handle = Handle::try_current().ok()?;
    if handle.runtime_flavor() == RuntimeFlavor::CurrentThread {
        tracing::error!("TLS-PSK needs the multi-threaded tokio runtime: handshake refused");
        return None;
    }
    let entry = tokio::task::block_in_place(|| handle.block_on(directory.device(&device)));
    match entry {
        Ok(Some(entry)) if entry.enabled => {
            let psk = entry.psk_base64?;
            BASE64.decode(psk.expose_secret()).ok()
        }
        Ok(_) => None,
        Err(err) => {
            tracing::error!(error = %err, %device, "looking up a TLS-PSK device failed");
            None
        }
    }
}
