//! The broker's view of the registry: [`eddy_broker::DeviceDirectory`] over the store.

use std::sync::Arc;

use async_trait::async_trait;
use eddy_broker::{DeviceCertificate, DeviceDirectory, DeviceEntry, DirectoryError};
use eddy_core::time::unix_now;
use eddy_core::{DeviceId, Privilege, TopicClass};
use eddy_store::Store;

#[derive(Debug)]
pub struct StoreDirectory {
    store: Arc<dyn Store>,
}

impl StoreDirectory {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

fn failed(err: impl std::fmt::Display) -> DirectoryError {
    DirectoryError(err.to_string())
}

#[async_trait]
impl DeviceDirectory for StoreDirectory {
    async fn device(&self, id: &DeviceId) -> Result<Option<DeviceEntry>, DirectoryError> {
        let Some(device) = self
            .store
            .device(&id.product_id, &id.device_name)
            .await
            .map_err(failed)?
        else {
            return Ok(None);
        };
        let mut classes = TopicClass::defaults();
        for policy in self
            .store
            .list_topic_policies(&id.product_id)
            .await
            .map_err(failed)?
        {
            let privilege = Privilege::from_code(policy.privilege).map_err(failed)?;
            classes.push(TopicClass::custom(&policy.suffix, privilege));
        }
        // A certificate device's TLS client certificate chains to its product's CA.
        let certificate = if device.psk.is_none() {
            let product = self.store.product(&id.product_id).await.map_err(failed)?;
            product.and_then(|p| p.ca).map(|ca| DeviceCertificate {
                cert_pem: device.cert_pem.clone(),
                ca_pem: ca.cert_pem,
            })
        } else {
            None
        };
        Ok(Some(DeviceEntry {
            certificate,
            psk_base64: device.psk,
            enabled: device.enabled,
            classes,
        }))
    }

    async fn device_online(&self, id: &DeviceId, client_ip: &str) -> Result<(), DirectoryError> {
        self.store
            .device_connected(&id.product_id, &id.device_name, client_ip, unix_now())
            .await
            .map(|_| ())
            .map_err(failed)
    }

    async fn device_offline(&self, id: &DeviceId) -> Result<(), DirectoryError> {
        self.store
            .device_disconnected(&id.product_id, &id.device_name, unix_now())
            .await
            .map(|_| ())
            .map_err(failed)
    }
}
