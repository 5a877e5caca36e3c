//! Dynamic registration (Tencent §8): a device that knows only its product's secret asks
//! for its own credentials. The HTTP side (signatures, encryption, replay) is the API's;
//! this is the product setting, the register limit and the credentials.
//!
//! Every registration issues new credentials (a PSK, or a certificate and its private
//! key), so a device that registers twice before it first connects invalidates the first
//! answer — as Tencent does. A device that has connected since it was created or reset is
//! refused: its credentials are settled.

use eddy_core::secret::{ExposeSecret as _, SecretString};
use eddy_core::time::unix_now;
use eddy_core::{DeviceId, DeviceName, EncryptionType, RegisterType};
use eddy_store::{ProductRecord, Registered, StoreError};

use crate::credentials::{generate_device_psk, issue_device_cert};
use crate::device::NewDevice;
use crate::{Registry, RegistryError, Result};

/// What a registered device receives.
#[derive(Debug)]
pub enum RegisteredCredentials {
    /// Key products: the device's new PSK, base64.
    Psk(SecretString),
    /// Certificate products: the device's new certificate and private key, PEM.
    Certificate {
        cert_pem: String,
        key_pem: SecretString,
    },
}

impl Registry {
    /// Registers `device_name` in `product` (already looked up, its secret verified by the
    /// caller) and returns the device's new credentials.
    pub async fn register_device(
        &self,
        product: &ProductRecord,
        device_name: &str,
    ) -> Result<RegisteredCredentials> {
        let mode = RegisterType::from_code(product.register_type)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if mode == RegisterType::Off {
            return Err(RegistryError::RegistrationOff(product.id.to_string()));
        }
        let name = DeviceName::parse(device_name)?;
        let mut created = false;
        if self.store.device(&product.id, &name).await?.is_none() {
            if mode == RegisterType::PreCreated {
                return Err(RegistryError::RegistrationNeedsDevice {
                    product: product.id.to_string(),
                    device: device_name.to_owned(),
                });
            }
            match self
                .create_device(NewDevice {
                    product_id: product.id.to_string(),
                    name: device_name.to_owned(),
                    defined_psk: None,
                })
                .await
            {
                Ok(_) => created = true,
                // Created by a concurrent registration: register it like any other.
                Err(RegistryError::DeviceExists { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        let id = DeviceId::new(product.id.clone(), name.clone());
        let credentials = match product.encryption {
            EncryptionType::Psk => RegisteredCredentials::Psk(generate_device_psk()),
            EncryptionType::Certificate => {
                let ca = product.ca.as_ref().ok_or_else(|| {
                    StoreError::Corrupt(format!("certificate product {} has no CA", product.id))
                })?;
                let issued = issue_device_cert(&id, &ca.cert_pem, ca.key_pem.expose_secret())?;
                RegisteredCredentials::Certificate {
                    cert_pem: issued.cert_pem,
                    key_pem: issued.key_pem,
                }
            }
        };
        let (psk, cert) = match &credentials {
            RegisteredCredentials::Psk(psk) => (Some(psk.expose_secret()), None),
            RegisteredCredentials::Certificate { cert_pem, .. } => (None, Some(cert_pem.as_str())),
        };
        let outcome = self
            .store
            .register_device(
                &product.id,
                &name,
                psk,
                cert,
                product.register_limit,
                unix_now(),
            )
            .await?;
        let refused = match outcome {
            Registered::Done => {
                tracing::info!(device = %id, created, "device registered dynamically");
                return Ok(credentials);
            }
            Registered::NoDevice => RegistryError::DeviceNotFound {
                product: product.id.to_string(),
                device: device_name.to_owned(),
            },
            Registered::Activated => RegistryError::DeviceActivated {
                product: product.id.to_string(),
                device: device_name.to_owned(),
            },
            Registered::LimitReached => RegistryError::RegisterLimit {
                product: product.id.to_string(),
                limit: product.register_limit,
            },
        };
        // A device created for this registration but refused it is not left behind.
        if created && let Err(err) = self.store.delete_device(&product.id, &name).await {
            tracing::warn!(device = %id, error = %err, "removing a refused auto-created device failed");
        }
        Err(refused)
    }
}
