//! How a product's devices prove who they are, and how they may register themselves.

use serde::{Deserialize, Serialize};

use crate::ids::IdError;

/// Tencent's `EncryptionType`: `"1"` certificate, `"2"` key (PSK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EncryptionType {
    /// Each device gets an X.509 certificate signed by the product's CA.
    Certificate,
    /// Each device gets a random pre-shared key (`DevicePsk`, base64).
    Psk,
}

impl EncryptionType {
    /// Tencent's wire form, a string.
    pub fn code(self) -> &'static str {
        match self {
            Self::Certificate => "1",
            Self::Psk => "2",
        }
    }

    pub fn from_code(code: &str) -> Result<Self, IdError> {
        match code {
            "1" => Ok(Self::Certificate),
            "2" => Ok(Self::Psk),
            other => Err(IdError {
                field: "ProductProperties.EncryptionType",
                reason: format!("must be \"1\" (certificate) or \"2\" (key), got {other:?}"),
            }),
        }
    }
}

/// Tencent's `RegisterType` for dynamic registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RegisterType {
    /// Dynamic registration is off.
    Off,
    /// Only devices created beforehand may fetch their credentials.
    PreCreated,
    /// Unknown device names are created on registration, up to the product's limit.
    AutoCreate,
}

impl RegisterType {
    pub fn code(self) -> i64 {
        match self {
            Self::Off => 0,
            Self::PreCreated => 1,
            Self::AutoCreate => 2,
        }
    }

    pub fn from_code(code: i64) -> Result<Self, IdError> {
        match code {
            0 => Ok(Self::Off),
            1 => Ok(Self::PreCreated),
            2 => Ok(Self::AutoCreate),
            other => Err(IdError {
                field: "RegisterType",
                reason: format!(
                    "must be 0 (off), 1 (pre-created devices) or 2 (auto-create), got {other}"
                ),
            }),
        }
    }
}
