//! Topic classes: which topics a device may publish or subscribe to.
//!
//! Every product has Tencent's default classes (TENCENT-PROTOCOL.md §3) plus the custom
//! classes created with `CreateTopicPolicy`. A class is a topic template over
//! `${productId}` and `${deviceName}`; a device's permissions are the templates expanded
//! with its own identity, so a device never reaches another device's topics.
//! The broker's ACL matches against these; this module only names and validates them.

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, IdError, ProductId};

/// What a class lets the device do (Tencent's `Privilege`: 1 publish, 2 subscribe, 3 both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Privilege {
    Publish,
    Subscribe,
    PublishSubscribe,
}

impl Privilege {
    /// Tencent's integer code.
    pub fn code(self) -> i64 {
        match self {
            Self::Publish => 1,
            Self::Subscribe => 2,
            Self::PublishSubscribe => 3,
        }
    }

    pub fn from_code(code: i64) -> Result<Self, IdError> {
        match code {
            1 => Ok(Self::Publish),
            2 => Ok(Self::Subscribe),
            3 => Ok(Self::PublishSubscribe),
            other => Err(IdError {
                field: "Privilege",
                reason: format!("must be 1 (publish), 2 (subscribe) or 3 (both), got {other}"),
            }),
        }
    }

    pub fn may_publish(self) -> bool {
        matches!(self, Self::Publish | Self::PublishSubscribe)
    }

    pub fn may_subscribe(self) -> bool {
        matches!(self, Self::Subscribe | Self::PublishSubscribe)
    }
}

/// A topic template with its privilege.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicClass {
    /// Template over `${productId}` and `${deviceName}`; may end in `/+` (per-request ids).
    pub template: String,
    pub privilege: Privilege,
}

/// Longest topic Tencent accepts, in bytes.
pub const MAX_TOPIC_BYTES: usize = 255;

impl TopicClass {
    fn new(template: &str, privilege: Privilege) -> Self {
        Self {
            template: template.to_owned(),
            privilege,
        }
    }

    /// Tencent's default classes, present on every product.
    pub fn defaults() -> Vec<Self> {
        use Privilege::{Publish as P, PublishSubscribe as PS, Subscribe as S};
        [
            ("${productId}/${deviceName}/control", S),
            ("${productId}/${deviceName}/event", P),
            ("${productId}/${deviceName}/data", PS),
            ("$shadow/operation/${productId}/${deviceName}", P),
            ("$shadow/operation/result/${productId}/${deviceName}", S),
            ("$ota/report/${productId}/${deviceName}", P),
            ("$ota/update/${productId}/${deviceName}", S),
            ("$rrpc/rxd/${productId}/${deviceName}/+", S),
            ("$rrpc/txd/${productId}/${deviceName}/+", P),
            ("$broadcast/rxd/${productId}/${deviceName}", S),
            ("$sys/operation/${productId}/${deviceName}", P),
            ("$sys/operation/result/${productId}/${deviceName}", S),
            ("$log/operation/${productId}/${deviceName}", P),
            ("$log/operation/result/${productId}/${deviceName}", S),
            ("$gateway/operation/${productId}/${deviceName}", P),
            ("$gateway/operation/result/${productId}/${deviceName}", S),
        ]
        .into_iter()
        .map(|(t, p)| Self::new(t, p))
        .collect()
    }

    /// A custom class from a policy's stored suffix (`${productId}/${deviceName}/<suffix>`).
    pub fn custom(suffix: &str, privilege: Privilege) -> Self {
        Self {
            template: format!("${{productId}}/${{deviceName}}/{suffix}"),
            privilege,
        }
    }

    /// The template with a device's identity filled in.
    pub fn expand(&self, device: &DeviceId) -> String {
        self.template
            .replace("${productId}", device.product_id.as_str())
            .replace("${deviceName}", device.device_name.as_str())
    }
}

/// Normalises a `CreateTopicPolicy` `TopicName` to the suffix after
/// `${productId}/${deviceName}/`. Both Tencent's forms are accepted: the bare suffix
/// (`custom/up`) and the full form (`PID/${deviceName}/custom/up`).
pub fn custom_topic_suffix(product_id: &ProductId, topic_name: &str) -> Result<String, IdError> {
    let full_prefix = format!("{product_id}/${{deviceName}}/");
    let suffix = topic_name.strip_prefix(&full_prefix).unwrap_or(topic_name);
    let bad = |reason: String| IdError {
        field: "TopicName",
        reason,
    };
    if suffix.is_empty() {
        return Err(bad("must not be empty".into()));
    }
    if suffix.contains('$') || suffix.starts_with('/') {
        return Err(bad(format!(
            "{topic_name:?} must be a suffix such as \"custom/up\" or \"{full_prefix}custom/up\""
        )));
    }
    if suffix.split('/').any(str::is_empty) {
        return Err(bad(format!("{topic_name:?} has an empty topic level")));
    }
    if suffix.contains(['+', '#']) {
        return Err(bad(format!(
            "{topic_name:?} must not contain the wildcards + or #"
        )));
    }
    if suffix.chars().any(char::is_control) {
        return Err(bad("must not contain control characters".into()));
    }
    // ProductId + '/' + the longest DeviceName + '/' + suffix must fit Tencent's limit.
    let longest = ProductId::LEN + 1 + crate::ids::DeviceName::MAX_LEN + 1 + suffix.len();
    if longest > MAX_TOPIC_BYTES {
        return Err(bad(format!(
            "is too long: the full topic can reach {longest} bytes, the limit is {MAX_TOPIC_BYTES}"
        )));
    }
    Ok(suffix.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DeviceName;

    fn pid() -> ProductId {
        ProductId::parse("ABCDE12345").unwrap()
    }

    #[test]
    fn privilege_codes_round_trip() {
        for p in [
            Privilege::Publish,
            Privilege::Subscribe,
            Privilege::PublishSubscribe,
        ] {
            assert_eq!(Privilege::from_code(p.code()), Ok(p));
        }
        assert!(Privilege::from_code(0).is_err());
        assert!(Privilege::from_code(4).is_err());
    }

    #[test]
    fn defaults_expand_to_the_device_only() {
        let dev = DeviceId::new(pid(), DeviceName::parse("d1").unwrap());
        let topics: Vec<_> = TopicClass::defaults()
            .iter()
            .map(|c| c.expand(&dev))
            .collect();
        assert!(topics.contains(&"ABCDE12345/d1/event".to_owned()));
        assert!(topics.contains(&"$shadow/operation/result/ABCDE12345/d1".to_owned()));
        assert!(
            topics
                .iter()
                .all(|t| t.contains("ABCDE12345") && t.contains("d1"))
        );
    }

    #[test]
    fn custom_names_accept_both_tencent_forms() {
        assert_eq!(
            custom_topic_suffix(&pid(), "custom/up").unwrap(),
            "custom/up"
        );
        assert_eq!(
            custom_topic_suffix(&pid(), "ABCDE12345/${deviceName}/custom/up").unwrap(),
            "custom/up"
        );
        for bad in [
            "",
            "/x",
            "a//b",
            "a/+",
            "a/#",
            "$sys/x",
            "OTHER12345/${deviceName}/x",
        ] {
            assert!(custom_topic_suffix(&pid(), bad).is_err(), "{bad}");
        }
        assert!(custom_topic_suffix(&pid(), &"x".repeat(200)).is_err());
        let dev = DeviceId::new(pid(), DeviceName::parse("d1").unwrap());
        assert_eq!(
            TopicClass::custom("custom/up", Privilege::Publish).expand(&dev),
            "ABCDE12345/d1/custom/up"
        );
    }
}
