//! Device groups (Eddy's: Tencent's iotcloud API has none; the seed asks for 分组管理):
//! named sets of devices of any products, the target of update tasks and broadcasts.
//! Names follow Tencent's product-name rules: 1–32 characters `[a-zA-Z0-9:_-]`.

use eddy_core::time::unix_now;
use eddy_core::{DeviceId, ProductName};
use eddy_store::{GroupRecord, Page, Paged, StoreError};

use crate::{Registry, RegistryError, Result};

fn check_name(name: &str) -> Result<()> {
    ProductName::parse(name).map_err(|e| RegistryError::InvalidParameter {
        field: "GroupName".into(),
        reason: e.reason.replace("ProductName", "GroupName"),
    })?;
    Ok(())
}

impl Registry {
    pub async fn create_group(&self, name: &str, description: &str) -> Result<()> {
        check_name(name)?;
        let record = GroupRecord {
            name: name.to_owned(),
            description: description.to_owned(),
            created_at: unix_now(),
            devices: 0,
        };
        match self.store.insert_group(&record).await {
            Err(StoreError::Conflict { .. }) => Err(RegistryError::GroupExists(name.to_owned())),
            other => Ok(other?),
        }
    }

    pub async fn delete_group(&self, name: &str) -> Result<()> {
        if self.store.delete_group(name).await? {
            Ok(())
        } else {
            Err(RegistryError::GroupNotFound(name.to_owned()))
        }
    }

    pub async fn list_groups(&self, page: Page) -> Result<Paged<GroupRecord>> {
        Ok(self.store.list_groups(page).await?)
    }

    /// The devices named by (product, name), each checked to exist.
    pub async fn devices(&self, names: &[(String, String)]) -> Result<Vec<DeviceId>> {
        let mut out = Vec::with_capacity(names.len());
        for (product, name) in names {
            let device = self.device(product, name).await?;
            out.push(DeviceId::new(device.product_id, device.name));
        }
        Ok(out)
    }

    pub async fn add_to_group(&self, name: &str, devices: &[DeviceId]) -> Result<()> {
        if self.store.add_group_devices(name, devices).await? {
            Ok(())
        } else {
            Err(RegistryError::GroupNotFound(name.to_owned()))
        }
    }

    /// Removes members; how many were.
    pub async fn remove_from_group(&self, name: &str, devices: &[DeviceId]) -> Result<u64> {
        self.group_exists(name).await?;
        Ok(self.store.remove_group_devices(name, devices).await?)
    }

    pub async fn group_devices(
        &self,
        name: &str,
        product_id: Option<&str>,
        page: Page,
    ) -> Result<Paged<DeviceId>> {
        self.group_exists(name).await?;
        let product = match product_id {
            Some(id) => Some(self.product(id).await?.id),
            None => None,
        };
        Ok(self
            .store
            .group_devices(name, product.as_ref(), page)
            .await?)
    }

    /// Every member of `name` in `product_id` (all pages).
    pub async fn all_group_devices(&self, name: &str, product_id: &str) -> Result<Vec<DeviceId>> {
        let mut out = Vec::new();
        loop {
            let page = Page {
                offset: out.len() as u64,
                limit: 250,
            };
            let got = self.group_devices(name, Some(product_id), page).await?;
            if got.items.is_empty() {
                return Ok(out);
            }
            out.extend(got.items);
        }
    }

    async fn group_exists(&self, name: &str) -> Result<()> {
        match self.store.group(name).await? {
            Some(_) => Ok(()),
            None => Err(RegistryError::GroupNotFound(name.to_owned())),
        }
    }
}
