//! Gateways and sub-devices (Tencent §6): a gateway product (ProductType 5, or 3 for LoRa
//! gateways) has devices that speak for devices of ordinary products bound to them. A
//! sub-device is bound to at most one gateway; a gateway has at most
//! [`DEFAULT_MAX_SUB_DEVICES`] sub-devices unless configured otherwise.

use eddy_core::time::unix_now;
use eddy_core::{DeviceId, DeviceName};
use eddy_store::{Bound, Page, Paged, ProductRecord};

use crate::{Registry, RegistryError, Result};

/// Tencent: 500 sub-devices per gateway (newer documents: 1500).
pub const DEFAULT_MAX_SUB_DEVICES: i64 = 500;

/// Tencent's ProductType values of gateway products: 5 ordinary gateway, 3 LoRa gateway.
pub fn is_gateway_product(product: &ProductRecord) -> bool {
    matches!(product.product_type, 3 | 5)
}

impl Registry {
    /// The gateway device, checked to be one.
    pub async fn gateway(&self, product_id: &str, name: &str) -> Result<DeviceId> {
        let product = self.product(product_id).await?;
        if !is_gateway_product(&product) {
            return Err(RegistryError::NotAGateway(product_id.to_owned()));
        }
        let device = self.device(product_id, name).await?;
        Ok(DeviceId::new(device.product_id, device.name))
    }

    /// A device that may become a sub-device: it exists and its product is no gateway.
    pub async fn sub_device(&self, product_id: &str, name: &str) -> Result<DeviceId> {
        let product = self.product(product_id).await?;
        if is_gateway_product(&product) {
            return Err(RegistryError::GatewayAsSubDevice(product_id.to_owned()));
        }
        let device = self.device(product_id, name).await?;
        Ok(DeviceId::new(device.product_id, device.name))
    }

    /// Binds `sub` to `gateway` (both checked by the caller).
    pub async fn bind(&self, gateway: &DeviceId, sub: &DeviceId) -> Result<()> {
        match self
            .store
            .bind_sub_device(gateway, sub, self.max_sub_devices, unix_now())
            .await?
        {
            Bound::Done => Ok(()),
            Bound::Elsewhere(other) => Err(RegistryError::BoundElsewhere {
                sub: sub.to_string(),
                gateway: other.to_string(),
            }),
            Bound::LimitReached => Err(RegistryError::SubDeviceLimit {
                gateway: gateway.to_string(),
                limit: self.max_sub_devices,
            }),
            Bound::NoDevice => Err(RegistryError::DeviceNotFound {
                product: sub.product_id.to_string(),
                device: sub.device_name.to_string(),
            }),
        }
    }

    /// Unbinds `sub` from `gateway`.
    pub async fn unbind(&self, gateway: &DeviceId, sub: &DeviceId) -> Result<()> {
        if self.store.unbind_sub_device(gateway, sub).await? {
            Ok(())
        } else {
            Err(RegistryError::NotBound {
                sub: sub.to_string(),
                gateway: gateway.to_string(),
            })
        }
    }

    /// Whether `sub` is bound to `gateway`.
    pub async fn is_bound(&self, gateway: &DeviceId, sub: &DeviceId) -> Result<bool> {
        Ok(self.store.gateway_of(sub).await?.as_ref() == Some(gateway))
    }

    pub async fn sub_devices(
        &self,
        gateway: &DeviceId,
        product_id: Option<&str>,
        page: Page,
    ) -> Result<Paged<DeviceId>> {
        let product = match product_id {
            Some(id) => Some(self.product(id).await?.id),
            None => None,
        };
        Ok(self
            .store
            .sub_devices(gateway, product.as_ref(), page)
            .await?)
    }

    /// Parses a sub-device name given with its product (for the error's field name).
    pub fn device_name(name: &str) -> Result<DeviceName> {
        Ok(DeviceName::parse(name)?)
    }
}
