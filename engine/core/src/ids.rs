//! Device identity as Tencent IoT Hub defines it.
//!
//! A device is named by its product's `ProductId` (10 characters `[A-Z0-9]`, chosen by the
//! hub) and its `DeviceName` (1–48 characters `[a-zA-Z0-9:_-]`, unique within the product).
//! Its MQTT ClientId is the two written together with no separator, which is unambiguous
//! because the ProductId has a fixed length.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Why an identifier was refused. `field` is the API field name (`ProductId`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct IdError {
    pub field: &'static str,
    pub reason: String,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')
}

fn check_name(field: &'static str, value: &str, max: usize) -> Result<(), IdError> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(IdError {
            field,
            reason: format!("must be 1 to {max} characters, got {len}"),
        });
    }
    if let Some(bad) = value.chars().find(|c| !is_name_char(*c)) {
        return Err(IdError {
            field,
            reason: format!("character {bad:?} is not allowed (allowed: a-z A-Z 0-9 : _ -)"),
        });
    }
    Ok(())
}

/// A product's id: exactly [`ProductId::LEN`] characters `[A-Z0-9]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductId(String);

impl ProductId {
    pub const LEN: usize = 10;
    const ALPHABET: &'static [u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

    pub fn parse(value: &str) -> Result<Self, IdError> {
        let ok = value.len() == Self::LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(IdError {
                field: "ProductId",
                reason: format!("must be {} characters [A-Z0-9], got {value:?}", Self::LEN),
            })
        }
    }

    /// A fresh random id. Collisions are checked by the store's primary key.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let id = (0..Self::LEN)
            .map(|_| char::from(Self::ALPHABET[rng.random_range(0..Self::ALPHABET.len())]))
            .collect();
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A product's display name: 1–32 characters `[a-zA-Z0-9:_-]`, unique per hub.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductName(String);

impl ProductName {
    pub const MAX_LEN: usize = 32;

    pub fn parse(value: &str) -> Result<Self, IdError> {
        check_name("ProductName", value, Self::MAX_LEN)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A device's name: 1–48 characters `[a-zA-Z0-9:_-]`, unique within its product.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceName(String);

impl DeviceName {
    pub const MAX_LEN: usize = 48;

    pub fn parse(value: &str) -> Result<Self, IdError> {
        check_name("DeviceName", value, Self::MAX_LEN)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One device: `${ProductId}/${DeviceName}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceId {
    pub product_id: ProductId,
    pub device_name: DeviceName,
}

impl DeviceId {
    pub fn new(product_id: ProductId, device_name: DeviceName) -> Self {
        Self {
            product_id,
            device_name,
        }
    }

    /// The MQTT ClientId and TLS/DTLS PSK identity: `${ProductId}${DeviceName}`.
    pub fn client_id(&self) -> String {
        format!("{}{}", self.product_id, self.device_name)
    }

    /// Splits a ClientId into its product and device parts.
    pub fn from_client_id(client_id: &str) -> Result<Self, IdError> {
        let split = client_id
            .char_indices()
            .nth(ProductId::LEN)
            .map(|(i, _)| i)
            .ok_or_else(|| IdError {
                field: "ClientId",
                reason: format!(
                    "must be a {}-character ProductId followed by a DeviceName",
                    ProductId::LEN
                ),
            })?;
        let (pid, dn) = client_id.split_at(split);
        Ok(Self::new(ProductId::parse(pid)?, DeviceName::parse(dn)?))
    }

    /// Splits a ClientId into its ProductId and DeviceName parts without allocating, for
    /// hot paths (the rule batcher reads it for every message). Accepts exactly the ids
    /// [`from_client_id`](Self::from_client_id) accepts; `None` for anything else.
    pub fn split_client_id(client_id: &str) -> Option<(&str, &str)> {
        let bytes = client_id.as_bytes();
        if bytes.len() <= ProductId::LEN {
            return None;
        }
        let (pid, dn) = bytes.split_at(ProductId::LEN);
        let pid_ok = pid
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        // Every allowed name character is ASCII, so bytes are characters here.
        let dn_ok =
            dn.len() <= DeviceName::MAX_LEN && dn.iter().all(|&b| is_name_char(char::from(b)));
        // Both parts are ASCII, so byte index LEN is a char boundary.
        (pid_ok && dn_ok).then(|| client_id.split_at(ProductId::LEN))
    }
}

/// Parsing from and converting into `String`, for serde's `try_from`/`into`.
macro_rules! string_newtype_conversions {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(&value)
            }
        }
        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.0
            }
        }
    )*};
}
string_newtype_display!(ProductId, ProductName, DeviceName);
string_newtype_conversions!(ProductId, ProductName, DeviceName);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.product_id, self.device_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_id_rules() {
        assert!(ProductId::parse("ABCDE12345").is_ok());
        assert!(ProductId::parse("abcde12345").is_err());
        assert!(ProductId::parse("ABCDE1234").is_err());
        assert!(ProductId::parse("ABCDE123456").is_err());
        for _ in 0..100 {
            let id = ProductId::generate();
            assert_eq!(ProductId::parse(id.as_str()), Ok(id));
        }
    }

    #[test]
    fn names_follow_tencent_charset_and_length() {
        assert!(DeviceName::parse("dev:1_a-B").is_ok());
        assert!(DeviceName::parse(&"a".repeat(48)).is_ok());
        assert!(DeviceName::parse(&"a".repeat(49)).is_err());
        assert!(DeviceName::parse("").is_err());
        assert!(DeviceName::parse("a/b").is_err());
        assert!(DeviceName::parse("a b").is_err());
        assert!(DeviceName::parse("设备").is_err());
        assert!(ProductName::parse(&"p".repeat(32)).is_ok());
        assert!(ProductName::parse(&"p".repeat(33)).is_err());
        let err = DeviceName::parse("a+b").unwrap_err();
        assert_eq!(err.field, "DeviceName");
        assert!(err.reason.contains("'+'"), "{err}");
    }

    #[test]
    fn client_id_round_trip() {
        let id = DeviceId::new(
            ProductId::parse("ABCDE12345").unwrap(),
            DeviceName::parse("sensor-1").unwrap(),
        );
        assert_eq!(id.client_id(), "ABCDE12345sensor-1");
        assert_eq!(DeviceId::from_client_id("ABCDE12345sensor-1").unwrap(), id);
        assert!(DeviceId::from_client_id("ABCDE12345").is_err());
        assert!(DeviceId::from_client_id("short").is_err());
        assert!(DeviceId::from_client_id("abcde12345dev").is_err());
    }

    #[test]
    fn split_client_id_agrees_with_from_client_id() {
        let long = format!("ABCDE12345{}", "d".repeat(48));
        let too_long = format!("ABCDE12345{}", "d".repeat(49));
        let cases = [
            "ABCDE12345sensor-1",
            "ABCDE12345a",
            "ABCDE12345",
            "ABCDE1234",
            "",
            "short",
            "abcde12345dev",
            "ABCDE12345dev/1",
            "ABCDE12345设备",
            "ABCDE1234é-dev",
            "设备设备设备设备设备dev",
            "ABCDE12345dev:1_a-B",
            &long,
            &too_long,
        ];
        for c in cases {
            let owned = DeviceId::from_client_id(c).ok();
            let split = DeviceId::split_client_id(c);
            assert_eq!(
                split,
                owned
                    .as_ref()
                    .map(|d| (d.product_id.as_str(), d.device_name.as_str())),
                "{c:?}"
            );
        }
        assert_eq!(
            DeviceId::split_client_id("ABCDE12345sensor-1"),
            Some(("ABCDE12345", "sensor-1"))
        );
    }
}
