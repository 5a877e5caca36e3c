//! Products: create, describe, list, delete, dynamic-registration settings.

use eddy_core::secret::ExposeSecret;
use eddy_core::time::unix_now;
use eddy_core::{EncryptionType, ProductId, ProductName, RegisterType, SecretString};
use eddy_store::{CaRecord, DeleteProduct, Page, Paged, ProductRecord, StoreError};

use crate::credentials::{generate_product_ca, generate_product_secret};
use crate::{Registry, RegistryError, Result};

/// How many times a random ProductId is redrawn after clashing with an existing one.
const ID_ATTEMPTS: usize = 8;
/// Shortest product secret accepted: AES-128 for dynamic registration uses its first 16 bytes.
const MIN_PRODUCT_SECRET: usize = 16;

/// What `CreateProduct` asks for. Optional Tencent fields not listed are accepted by the
/// API and ignored.
#[derive(Debug)]
pub struct NewProduct {
    pub name: ProductName,
    pub description: String,
    pub encryption: EncryptionType,
    pub product_type: i64,
    pub format: String,
    pub region: String,
    pub register_type: RegisterType,
    pub register_limit: i64,
    /// A caller-chosen product secret; generated when absent.
    pub secret: Option<SecretString>,
}

impl NewProduct {
    /// A product with Tencent's defaults for everything but its name and key type.
    pub fn new(name: ProductName, encryption: EncryptionType) -> Self {
        Self {
            name,
            description: String::new(),
            encryption,
            product_type: 0,
            format: "json".to_owned(),
            region: String::new(),
            register_type: RegisterType::Off,
            register_limit: 0,
            secret: None,
        }
    }
}

fn check_register_limit(limit: i64) -> Result<()> {
    if limit < 0 {
        return Err(RegistryError::invalid(
            "RegisterLimit",
            format!("must not be negative, got {limit}"),
        ));
    }
    Ok(())
}

impl Registry {
    pub async fn create_product(&self, new: NewProduct) -> Result<ProductRecord> {
        if !matches!(new.format.as_str(), "json" | "custom") {
            return Err(RegistryError::invalid(
                "ProductProperties.Format",
                format!("must be \"json\" or \"custom\", got {:?}", new.format),
            ));
        }
        check_register_limit(new.register_limit)?;
        let secret = match new.secret {
            Some(s) if s.expose_secret().len() < MIN_PRODUCT_SECRET => {
                return Err(RegistryError::invalid(
                    "ProductProperties.ProductSecret",
                    format!("must be at least {MIN_PRODUCT_SECRET} characters"),
                ));
            }
            Some(s) => s,
            None => generate_product_secret(),
        };
        for _ in 0..ID_ATTEMPTS {
            let id = ProductId::generate();
            let ca = match new.encryption {
                EncryptionType::Certificate => {
                    let ca = generate_product_ca(&id)?;
                    Some(CaRecord {
                        cert_pem: ca.cert_pem,
                        key_pem: ca.key_pem,
                    })
                }
                EncryptionType::Psk => None,
            };
            let record = ProductRecord {
                id,
                name: new.name.clone(),
                description: new.description.clone(),
                encryption: new.encryption,
                product_type: new.product_type,
                format: new.format.clone(),
                region: new.region.clone(),
                register_type: new.register_type.code(),
                register_limit: new.register_limit,
                secret: secret.clone(),
                ca,
                created_at: unix_now(),
            };
            match self.store.insert_product(&record).await {
                Ok(()) => {
                    tracing::info!(product = %record.id, name = %record.name, "product created");
                    return Ok(record);
                }
                Err(StoreError::Conflict {
                    what: "product name",
                }) => return Err(RegistryError::ProductNameTaken(new.name.to_string())),
                Err(StoreError::Conflict { .. }) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(RegistryError::Crypto(format!(
            "no free ProductId after {ID_ATTEMPTS} random draws"
        )))
    }

    pub async fn product(&self, id: &str) -> Result<ProductRecord> {
        let parsed = ProductId::parse(id).map_err(|_| RegistryError::ProductNotFound(id.into()))?;
        self.store
            .product(&parsed)
            .await?
            .ok_or_else(|| RegistryError::ProductNotFound(id.into()))
    }

    pub async fn list_products(&self, page: Page) -> Result<Paged<ProductRecord>> {
        Ok(self.store.list_products(page).await?)
    }

    pub async fn delete_product(&self, id: &str) -> Result<()> {
        let product = self.product(id).await?;
        match self.store.delete_product(&product.id).await? {
            DeleteProduct::Deleted => {
                tracing::info!(product = %product.id, "product deleted");
                Ok(())
            }
            DeleteProduct::NotFound => Err(RegistryError::ProductNotFound(id.into())),
            DeleteProduct::HasDevices => Err(RegistryError::ProductHasDevices(id.into())),
        }
    }

    /// Sets dynamic registration; returns the updated product (its secret included).
    pub async fn update_dynamic_register(
        &self,
        id: &str,
        register_type: RegisterType,
        register_limit: Option<i64>,
    ) -> Result<ProductRecord> {
        let product = self.product(id).await?;
        let limit = register_limit.unwrap_or(product.register_limit);
        check_register_limit(limit)?;
        if !self
            .store
            .update_product_registration(&product.id, register_type.code(), limit)
            .await?
        {
            return Err(RegistryError::ProductNotFound(id.into()));
        }
        self.product(id).await
    }
}
