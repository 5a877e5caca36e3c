//! `[mqtt]`'s transport listeners: TLS (with TLS-PSK and client certificates) and
//! WebSocket (ws, wss).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, MqttConfig};

/// `[coap]`: Tencent's CoAP access.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CoapConfig {
    /// Plain CoAP over UDP; empty (the default) turns it off.
    pub listen: String,
    /// CoAP over DTLS-PSK; empty turns it off.
    pub dtls_listen: String,
    pub max_payload_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub exchange_lifetime: Duration,
    #[serde(with = "humantime_serde")]
    pub dtls_handshake_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub dtls_idle_timeout: Duration,
    pub max_dtls_sessions: usize,
}

impl CoapConfig {
    /// The plain and the DTLS listen addresses.
    pub fn listeners(&self) -> Result<(Option<SocketAddr>, Option<SocketAddr>), ConfigError> {
        Ok((
            listen_addr("coap.listen", &self.listen)?,
            listen_addr("coap.dtls-listen", &self.dtls_listen)?,
        ))
    }

    pub fn settings(&self) -> Result<eddy_coap::CoapSettings, ConfigError> {
        if self.max_payload_bytes == 0 || self.max_dtls_sessions == 0 {
            return Err(ConfigError(
                "  - coap.max-payload-bytes and coap.max-dtls-sessions must be more than 0".into(),
            ));
        }
        Ok(eddy_coap::CoapSettings {
            max_payload_bytes: self.max_payload_bytes,
            token_ttl: self.token_ttl,
            exchange_lifetime: self.exchange_lifetime,
            dtls_handshake_timeout: self.dtls_handshake_timeout,
            dtls_idle_timeout: self.dtls_idle_timeout,
            max_dtls_sessions: self.max_dtls_sessions,
            ..eddy_coap::CoapSettings::default()
        })
    }
}

/// The optional MQTT listeners besides plain TCP.
#[derive(Debug, Clone, Default)]
pub struct MqttListeners {
    pub tls: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    pub wss: Option<SocketAddr>,
}

/// An optional listen address: empty means off.
fn listen_addr(key: &str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        ConfigError(format!(
            "  - {key} must be an address like \"0.0.0.0:8883\" (or \"\" for off), got {value:?}"
        ))
    })
}

impl MqttConfig {
    /// The TLS and WebSocket listen addresses.
    pub fn listeners(&self) -> Result<MqttListeners, ConfigError> {
        if !self.ws_path.starts_with('/') {
            return Err(ConfigError(format!(
                "  - mqtt.ws-path must start with '/', got {:?}",
                self.ws_path
            )));
        }
        Ok(MqttListeners {
            tls: listen_addr("mqtt.tls-listen", &self.tls_listen)?,
            ws: listen_addr("mqtt.ws-listen", &self.ws_listen)?,
            wss: listen_addr("mqtt.wss-listen", &self.wss_listen)?,
        })
    }

    /// The server certificate for the TLS listeners: the configured PEM files, or a
    /// development one generated under `data_dir/tls` (logged as such).
    pub fn tls_settings(
        &self,
        data_dir: &Path,
    ) -> anyhow::Result<eddy_broker::transport::TlsSettings> {
        use anyhow::Context as _;
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => (
                std::fs::read(cert)
                    .with_context(|| format!("reading mqtt.tls-cert {}", cert.display()))?,
                std::fs::read(key)
                    .with_context(|| format!("reading mqtt.tls-key {}", key.display()))?,
            ),
            (None, None) => crate::tls::development_server_cert(&data_dir.join("tls"))?,
            _ => anyhow::bail!("mqtt.tls-cert and mqtt.tls-key go together: set both or neither"),
        };
        eddy_broker::transport::TlsSettings::from_pem(&cert, &key, self.tls_psk)
            .map_err(|e| anyhow::anyhow!("mqtt.tls-cert / mqtt.tls-key: {e}"))
    }
}
