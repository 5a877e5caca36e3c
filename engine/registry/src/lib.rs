//! # eddy-registry — who the devices are
//!
//! Tencent IoT Hub's registry rules on top of [`eddy_store::Store`]: products with
//! hub-generated ids and secrets, devices with a PSK or a certificate signed by their
//! product's CA, enable state, and custom topic classes. The management API (and, later,
//! dynamic registration) call into this crate; the broker reads the same store to
//! authenticate. Everything here is transport-free and returns [`RegistryError`], which
//! names the Tencent error it corresponds to.

mod credentials;
mod device;
mod product;
mod topic_policy;

use std::sync::Arc;

use eddy_core::IdError;
use eddy_store::{Store, StoreError};

pub use credentials::{
    GeneratedApiKey, decode_psk, generate_api_key, generate_device_psk, generate_product_secret,
};
pub use device::{CreatedDevice, NewDevice, ResetOutcome};
pub use product::NewProduct;
pub use topic_policy::TopicPolicyView;

/// A registry failure. Each variant is one of Tencent's error codes (see
/// [`RegistryError::code`]); the message is meant for the API caller.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{field}: {reason}")]
    InvalidParameter { field: String, reason: String },
    #[error("product {0} does not exist")]
    ProductNotFound(String),
    #[error("device {product}/{device} does not exist")]
    DeviceNotFound { product: String, device: String },
    #[error("a product named {0:?} already exists")]
    ProductNameTaken(String),
    #[error("device {product}/{device} already exists")]
    DeviceExists { product: String, device: String },
    #[error("product {0} still has devices; delete them first")]
    ProductHasDevices(String),
    #[error("product {0} uses certificate authentication and has no device PSKs")]
    PskNotSupported(String),
    #[error("topic policy {topic:?} already exists in product {product}")]
    TopicPolicyExists { product: String, topic: String },
    #[error("topic policy {topic:?} does not exist in product {product}")]
    TopicPolicyNotFound { product: String, topic: String },
    #[error("generating credentials failed: {0}")]
    Crypto(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    /// The Tencent Cloud API error code for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidParameter { .. } => "InvalidParameterValue",
            Self::ProductNotFound(_) => "ResourceNotFound.ProductNotExist",
            Self::DeviceNotFound { .. } => "ResourceNotFound.DeviceNotExist",
            Self::ProductNameTaken(_) => "InvalidParameterValue.ProductAlreadyExist",
            Self::DeviceExists { .. } => "InvalidParameterValue.DeviceAlreadyExist",
            Self::ProductHasDevices(_) => "UnauthorizedOperation.DevicesExistUnderProduct",
            Self::PskNotSupported(_) => "UnauthorizedOperation.ProductNotSupportPSK",
            Self::TopicPolicyExists { .. } => "InvalidParameterValue.TopicPolicyAlreadyExist",
            Self::TopicPolicyNotFound { .. } => "ResourceNotFound.TopicPolicyNotExist",
            Self::Crypto(_) | Self::Store(_) => "InternalError",
        }
    }

    /// True when the fault is the hub's, not the caller's (logged as an error).
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Crypto(_) | Self::Store(_))
    }

    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

impl From<IdError> for RegistryError {
    fn from(err: IdError) -> Self {
        Self::InvalidParameter {
            field: err.field.to_owned(),
            reason: err.reason,
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// The registry: Tencent's rules over a [`Store`].
#[derive(Debug, Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
}

impl Registry {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
