//! How the broker learns who a device is, and tells the registry when it comes and goes.
//! The `eddy` binary implements [`DeviceDirectory`] over the registry; the broker never
//! touches the store itself.

use eddy_core::{DeviceId, SecretString, TopicClass};

/// What the broker needs to admit a device.
#[derive(Debug, Clone)]
pub struct DeviceEntry {
    /// Base64 PSK of a key device; `None` for certificate devices.
    pub psk_base64: Option<SecretString>,
    pub enabled: bool,
    /// The product's topic classes: Tencent's defaults and the custom ones.
    pub classes: Vec<TopicClass>,
    /// A certificate device's stored certificate and its product's CA (PEM): a TLS
    /// client certificate must chain to the CA (`cert_auth`).
    pub certificate: Option<DeviceCertificate>,
}

/// What a certificate device's TLS client certificate is checked against.
#[derive(Debug, Clone)]
pub struct DeviceCertificate {
    /// The certificate the registry issued to the device, if it keeps one.
    pub cert_pem: Option<String>,
    /// The product's CA certificate.
    pub ca_pem: String,
}

/// The directory failed (the store is down…). The CONNECT gets "server unavailable".
#[derive(Debug, thiserror::Error)]
#[error("device directory: {0}")]
pub struct DirectoryError(pub String);

#[async_trait::async_trait]
pub trait DeviceDirectory: Send + Sync + std::fmt::Debug + 'static {
    /// The device's credentials and permissions; `None` when it does not exist.
    async fn device(&self, id: &DeviceId) -> Result<Option<DeviceEntry>, DirectoryError>;
    /// The device connected from `client_ip`.
    async fn device_online(&self, id: &DeviceId, client_ip: &str) -> Result<(), DirectoryError>;
    /// The device's connection ended.
    async fn device_offline(&self, id: &DeviceId) -> Result<(), DirectoryError>;
}

/// A directory with no devices: the broker serves generic clients only (open-broker mode
/// on its own, as in the broker's and the load generator's tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDevices;

#[async_trait::async_trait]
impl DeviceDirectory for NoDevices {
    async fn device(&self, _: &DeviceId) -> Result<Option<DeviceEntry>, DirectoryError> {
        Ok(None)
    }

    async fn device_online(&self, _: &DeviceId, _: &str) -> Result<(), DirectoryError> {
        Ok(())
    }

    async fn device_offline(&self, _: &DeviceId) -> Result<(), DirectoryError> {
        Ok(())
    }
}
