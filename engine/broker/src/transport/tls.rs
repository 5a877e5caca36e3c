//! TLS on the MQTT listener: rustls for server-certificate and client-certificate
//! clients, OpenSSL for TLS-PSK clients (Tencent's C SDK), on the same port.
//!
//! rustls asks for a client certificate but does not require one. It checks only that the
//! client holds the key of the certificate it presents; which device the certificate
//! belongs to, and whether its product's CA signed it, is decided at CONNECT
//! (`crate::cert_auth`), where the registry is at hand.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

use super::prefixed::Prefixed;
use super::psk::PskAcceptor;
use super::{Accepted, TransportAuth, TransportError, client_hello};
use crate::DeviceDirectory;

/// The server's certificate and what the TLS listener accepts.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The server certificate chain, leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivateKeyDer<'static>>,
    /// Accept TLS-PSK clients (key devices proving their device key in the handshake).
    pub psk: bool,
}

impl TlsSettings {
    /// Reads a PEM certificate chain and private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], psk: bool) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject as _;
        let cert_chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("reading the certificate PEM: {e}"))?;
        if cert_chain.is_empty() {
            return Err("the certificate PEM holds no certificate".into());
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| format!("reading the private key PEM: {e}"))?;
        Ok(Self {
            cert_chain,
            key: Arc::new(key),
            psk,
        })
    }
}

/// Accepts TLS connections: rustls, or OpenSSL for a ClientHello offering PSK suites.
pub struct TlsAcceptor {
    rustls: tokio_rustls::TlsAcceptor,
    psk: Option<PskAcceptor>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("psk", &self.psk.is_some())
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// `directory` gives TLS-PSK handshakes their device keys.
    pub fn new(
        settings: &TlsSettings,
        directory: Arc<dyn DeviceDirectory>,
    ) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(Arc::new(AnyClientCertificate { provider }))
            .with_single_cert(settings.cert_chain.clone(), settings.key.clone_key())
            .map_err(|e| format!("the server certificate and key: {e}"))?;
        let psk = if settings.psk {
            Some(PskAcceptor::new(directory)?)
        } else {
            None
        };
        Ok(Self {
            rustls: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            psk,
        })
    }

    /// Runs the TLS handshake on `tcp`.
    pub(crate) async fn accept(
        &self,
        mut tcp: TcpStream,
        peer: SocketAddr,
    ) -> Result<Accepted, TransportError> {
        let (first, offers_psk) = client_hello::read_first_record(&mut tcp).await?;
        let stream = Prefixed::new(Bytes::from(first), tcp);
        if offers_psk && let Some(psk) = &self.psk {
            let (stream, identity) = psk.accept(stream).await?;
            return Ok(Accepted {
                stream,
                peer,
                auth: TransportAuth::Psk(identity),
            });
        }
        let tls = self
            .rustls
            .accept(stream)
            .await
            .map_err(|e| TransportError::Tls(e.to_string()))?;
        let auth = match tls.get_ref().1.peer_certificates() {
            Some(chain) if !chain.is_empty() => {
                TransportAuth::Certificate(chain.iter().map(|c| c.clone().into_owned()).collect())
            }
            _ => TransportAuth::None,
        };
        Ok(Accepted {
            stream: Box::new(tls),
            peer,
            auth,
        })
    }
}

/// Asks every client for a certificate, requires none, and checks only the handshake's
/// proof of possession; the registry decides later whose certificate it is.
#[derive(Debug)]
struct AnyClientCertificate {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Only well-formed certificates go on; the chain is checked against the
        // device's product CA at CONNECT.
        webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
