//! Devices: create (with a PSK or a certificate), describe, list, delete, enable/disable,
//! rotate the PSK, reset the online state.

use eddy_core::secret::ExposeSecret;
use eddy_core::time::unix_now;
use eddy_core::{DeviceId, DeviceName, EncryptionType, SecretString};
use eddy_store::{DeviceFilter, DeviceRecord, Page, Paged, StoreError};

use crate::credentials::{decode_psk, generate_device_psk, issue_device_cert};
use crate::{Registry, RegistryError, Result};

/// What `CreateDevice` asks for.
#[derive(Debug)]
pub struct NewDevice {
    pub product_id: String,
    pub name: String,
    /// A caller-chosen PSK (base64); key products only.
    pub defined_psk: Option<SecretString>,
}

/// A created device and, for certificate products, its private key — handed out once.
#[derive(Debug)]
pub struct CreatedDevice {
    pub record: DeviceRecord,
    pub private_key_pem: Option<SecretString>,
}

/// One device's result in `ResetDeviceState`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOutcome {
    pub device_name: String,
    pub success: bool,
    pub reason: Option<String>,
}

impl Registry {
    fn device_not_found(product: &str, device: &str) -> RegistryError {
        RegistryError::DeviceNotFound {
            product: product.to_owned(),
            device: device.to_owned(),
        }
    }

    pub async fn create_device(&self, new: NewDevice) -> Result<CreatedDevice> {
        let product = self.product(&new.product_id).await?;
        let name = DeviceName::parse(&new.name)?;
        let id = DeviceId::new(product.id.clone(), name.clone());
        let (psk, cert_pem, private_key_pem) = match product.encryption {
            EncryptionType::Psk => {
                let psk = match new.defined_psk {
                    Some(defined) => {
                        decode_psk("DefinedPsk", defined.expose_secret())?;
                        defined
                    }
                    None => generate_device_psk(),
                };
                (Some(psk), None, None)
            }
            EncryptionType::Certificate => {
                if new.defined_psk.is_some() {
                    return Err(RegistryError::PskNotSupported(product.id.to_string()));
                }
                let ca = product.ca.as_ref().ok_or_else(|| {
                    StoreError::Corrupt(format!("certificate product {} has no CA", product.id))
                })?;
                let issued = issue_device_cert(&id, &ca.cert_pem, ca.key_pem.expose_secret())?;
                (None, Some(issued.cert_pem), Some(issued.key_pem))
            }
        };
        let now = unix_now();
        let record = DeviceRecord {
            product_id: product.id.clone(),
            name,
            psk,
            cert_pem,
            enabled: true,
            online: false,
            first_online_at: None,
            login_at: None,
            last_offline_at: None,
            client_ip: None,
            log_level: 0,
            firmware_version: String::new(),
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_device(&record).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(RegistryError::DeviceExists {
                    product: product.id.to_string(),
                    device: new.name,
                });
            }
            Err(err) => return Err(err.into()),
        }
        tracing::info!(device = %id, "device created");
        Ok(CreatedDevice {
            record,
            private_key_pem,
        })
    }

    pub async fn device(&self, product_id: &str, name: &str) -> Result<DeviceRecord> {
        let product = self.product(product_id).await?;
        let Ok(parsed) = DeviceName::parse(name) else {
            return Err(Self::device_not_found(product_id, name));
        };
        self.store
            .device(&product.id, &parsed)
            .await?
            .ok_or_else(|| Self::device_not_found(product_id, name))
    }

    /// Sets the log level the device is told over `$log` (Tencent's UpdateDeviceLogLevel:
    /// 0 off, 1 error, 2 warning, 3 info, 4 debug); returns the device.
    pub async fn set_device_log_level(
        &self,
        product_id: &str,
        name: &str,
        level: i64,
    ) -> Result<DeviceRecord> {
        if !(0..=4).contains(&level) {
            return Err(RegistryError::invalid(
                "LogLevel",
                format!(
                    "must be 0 (off), 1 (error), 2 (warning), 3 (info) or 4 (debug), got {level}"
                ),
            ));
        }
        let mut device = self.device(product_id, name).await?;
        if !self
            .store
            .set_device_log_level(&device.product_id, &device.name, level)
            .await?
        {
            return Err(Self::device_not_found(product_id, name));
        }
        device.log_level = level;
        Ok(device)
    }

    pub async fn list_devices(
        &self,
        product_id: &str,
        filter: &DeviceFilter,
        page: Page,
    ) -> Result<Paged<DeviceRecord>> {
        let product = self.product(product_id).await?;
        Ok(self.store.list_devices(&product.id, filter, page).await?)
    }

    pub async fn delete_device(&self, product_id: &str, name: &str) -> Result<()> {
        let device = self.device(product_id, name).await?;
        if !self
            .store
            .delete_device(&device.product_id, &device.name)
            .await?
        {
            return Err(Self::device_not_found(product_id, name));
        }
        tracing::info!(product = %device.product_id, device = %device.name, "device deleted");
        Ok(())
    }

    /// Enables or disables devices, all or none: an unknown name fails the whole call.
    pub async fn set_devices_enabled(
        &self,
        product_id: &str,
        names: &[String],
        enabled: bool,
    ) -> Result<()> {
        let product = self.product(product_id).await?;
        if names.is_empty() {
            return Err(RegistryError::invalid("DeviceNames", "must not be empty"));
        }
        let parsed = names
            .iter()
            .map(|n| DeviceName::parse(n).map_err(|_| Self::device_not_found(product_id, n)))
            .collect::<Result<Vec<_>>>()?;
        let missing = self
            .store
            .set_devices_enabled(&product.id, &parsed, enabled)
            .await?;
        if let Some(first) = missing.first() {
            return Err(Self::device_not_found(product_id, first.as_str()));
        }
        tracing::info!(product = %product.id, count = names.len(), enabled, "devices enable state set");
        Ok(())
    }

    pub async fn update_device_psk(
        &self,
        product_id: &str,
        name: &str,
        psk: &SecretString,
    ) -> Result<()> {
        let product = self.product(product_id).await?;
        if product.encryption != EncryptionType::Psk {
            return Err(RegistryError::PskNotSupported(product.id.to_string()));
        }
        decode_psk("Psk", psk.expose_secret())?;
        let device = self.device(product_id, name).await?;
        if !self
            .store
            .update_device_psk(&device.product_id, &device.name, psk.expose_secret())
            .await?
        {
            return Err(Self::device_not_found(product_id, name));
        }
        tracing::info!(product = %device.product_id, device = %device.name, "device PSK replaced");
        Ok(())
    }

    /// Returns each device to "never activated"; reports per device.
    pub async fn reset_device_state(
        &self,
        product_id: &str,
        names: &[String],
    ) -> Result<Vec<ResetOutcome>> {
        let product = self.product(product_id).await?;
        if names.is_empty() {
            return Err(RegistryError::invalid("DeviceNames", "must not be empty"));
        }
        let mut outcomes = Vec::with_capacity(names.len());
        for name in names {
            let done = match DeviceName::parse(name) {
                Ok(parsed) => self.store.reset_device_state(&product.id, &parsed).await?,
                Err(_) => false,
            };
            outcomes.push(ResetOutcome {
                device_name: name.clone(),
                success: done,
                reason: (!done).then(|| "device does not exist".to_owned()),
            });
        }
        Ok(outcomes)
    }
}
