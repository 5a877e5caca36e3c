//! # eddy-registry — who the devices are
//!
//! Tencent IoT Hub's registry rules on top of [`eddy_store::Store`]: products with
//! hub-generated ids and secrets, devices with a PSK or a certificate signed by their
//! product's CA, enable state, custom topic classes, and topic rules. The management API (and, later,
//! dynamic registration) call into this crate; the broker reads the same store to
//! authenticate. Everything here is transport-free and returns [`RegistryError`], which
//! names the Tencent error it corresponds to.

mod credentials;
mod device;
pub mod gateway;
mod groups;
mod product;
mod registration;
pub mod rules;
mod topic_policy;

use std::sync::Arc;

use eddy_core::IdError;
use eddy_store::{Store, StoreError};

pub use credentials::{
    GeneratedApiKey, decode_psk, generate_api_key, generate_device_psk, generate_product_secret,
};
pub use device::{CreatedDevice, NewDevice, ResetOutcome};
pub use product::NewProduct;
pub use registration::RegisteredCredentials;
pub use rules::{RuleName, TopicRuleContent};
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
    /// The rule's SQL cannot be used (the message says where and why).
    #[error("{0}")]
    InvalidSql(String),
    /// A rule without actions.
    #[error("{0}")]
    ActionNil(String),
    #[error("a topic rule named {0:?} already exists")]
    TopicRuleExists(String),
    #[error("topic rule {0:?} does not exist")]
    TopicRuleNotFound(String),
    #[error("the hub already holds the most topic rules it allows ({0})")]
    RuleLimit(u64),
    #[error("topic rule {0:?} is already enabled")]
    RuleAlreadyEnabled(String),
    #[error("topic rule {0:?} is already disabled")]
    RuleAlreadyDisabled(String),
    /// Dynamic registration is off for the product (Tencent's message).
    #[error("Not support dynamic device register, please check setting first (product {0})")]
    RegistrationOff(String),
    /// The product registers only devices created beforehand (Tencent's message).
    #[error("Pre create mode: device not exists ({product}/{device})")]
    RegistrationNeedsDevice { product: String, device: String },
    #[error(
        "device {product}/{device} has connected already; its credentials cannot be fetched again (reset it first)"
    )]
    DeviceActivated { product: String, device: String },
    #[error("product {product} has registered its limit of {limit} devices; raise RegisterLimit")]
    RegisterLimit { product: String, limit: i64 },
    #[error("a device group named {0:?} already exists")]
    GroupExists(String),
    #[error("device group {0:?} does not exist")]
    GroupNotFound(String),
    #[error("product {0} is not a gateway product (ProductType 5)")]
    NotAGateway(String),
    #[error("product {0} is a gateway product; its devices cannot be sub-devices")]
    GatewayAsSubDevice(String),
    #[error("device {sub} is bound to gateway {gateway} already")]
    BoundElsewhere { sub: String, gateway: String },
    #[error("gateway {gateway} has its most sub-devices ({limit})")]
    SubDeviceLimit { gateway: String, limit: i64 },
    #[error("device {sub} is not bound to gateway {gateway}")]
    NotBound { sub: String, gateway: String },
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
            Self::InvalidSql(_) => "InvalidParameterValue.InvalidSQL",
            Self::ActionNil(_) => "InvalidParameterValue.ActionNil",
            Self::TopicRuleExists(_) => "InvalidParameterValue.TopicRuleAlreadyExist",
            Self::TopicRuleNotFound(_) => "ResourceNotFound.TopicRuleNotExist",
            Self::RuleLimit(_) => "InvalidParameterValue.RuleNumberBeyondLimit",
            Self::RuleAlreadyEnabled(_) => "FailedOperation.RuleAlreadyEnabled",
            Self::RuleAlreadyDisabled(_) => "FailedOperation.RuleAlreadyDisabled",
            // Tencent documents no codes for these: Eddy's, in Tencent's style.
            Self::RegistrationOff(_) => "UnauthorizedOperation.DynamicRegisterDisabled",
            Self::RegistrationNeedsDevice { .. } => "ResourceNotFound.DeviceNotExist",
            Self::DeviceActivated { .. } => "FailedOperation.DeviceAlreadyActivated",
            Self::RegisterLimit { .. } => "LimitExceeded.DeviceRegisterLimit",
            // Eddy's own actions, Eddy's codes in Tencent's style.
            Self::GroupExists(_) => "InvalidParameterValue.DeviceGroupAlreadyExist",
            Self::GroupNotFound(_) => "ResourceNotFound.DeviceGroupNotExist",
            Self::NotAGateway(_) | Self::GatewayAsSubDevice(_) => {
                "InvalidParameterValue.ProductTypeNotSupport"
            }
            Self::BoundElsewhere { .. } => "UnauthorizedOperation.DeviceHasAlreadyBindGateway",
            Self::SubDeviceLimit { .. } => "LimitExceeded.GatewaySubDeviceLimit",
            Self::NotBound { .. } => "UnauthorizedOperation.DeviceIsNotBindGateway",
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
    /// Most topic rules the hub holds ([`rules::DEFAULT_MAX_RULES`] unless set).
    max_rules: u64,
    /// Most sub-devices one gateway has ([`gateway::DEFAULT_MAX_SUB_DEVICES`] unless set).
    max_sub_devices: i64,
}

impl Registry {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            max_rules: rules::DEFAULT_MAX_RULES,
            max_sub_devices: gateway::DEFAULT_MAX_SUB_DEVICES,
        }
    }

    /// Sets the most sub-devices one gateway has (Tencent: 500).
    pub fn with_max_sub_devices(mut self, max: i64) -> Self {
        self.max_sub_devices = max;
        self
    }

    /// Sets the most topic rules the hub holds (`CreateTopicRule` beyond it answers
    /// `InvalidParameterValue.RuleNumberBeyondLimit`).
    pub fn with_max_rules(mut self, max_rules: u64) -> Self {
        self.max_rules = max_rules;
        self
    }

    pub fn max_rules(&self) -> u64 {
        self.max_rules
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
