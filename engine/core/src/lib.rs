//! # eddy-core — the shared vocabulary
//!
//! Every stage of the message path (transport → auth/ACL → router → rules → delivery →
//! plugins) and the management plane speak in these types. This crate depends on no other
//! Eddy crate and does no I/O: it owns names, validation and small pure helpers.
//!
//! - [`destination`]: rule output rows ([`destination::Envelope`]) and the trait a
//!   destination (a plugin) implements; shared by rules, delivery and the plugin host.
//! - [`downlink`]: the trait the API uses to send one device a message.
//! - [`filter_index`]: many topic filters looked up by topic, in time independent of
//!   their count (the rule engine's index).
//! - [`ids`]: `ProductId`, `ProductName`, `DeviceName`, `DeviceId` with Tencent's rules.
//! - [`topic`]: validated MQTT topic names and filters, matching and coverage.
//! - [`topic_class`]: per-product topic permission classes (Tencent's default classes and
//!   custom ones) and their `${deviceName}` templates.
//! - [`credential`]: how a product's devices authenticate and register.
//! - [`pipeline`]: how accepted messages leave the broker (`MessageTap`) and how later
//!   stages publish back into it (`Publish`).
//! - [`message`]: an accepted message and its QoS, as stages after the transport see it.
//! - [`secret`]: secrets that never print.
//! - [`time`]: unix-time helpers used for stored timestamps.

/// `Display`, `Debug` and `AsRef<str>` for a newtype over `String` whose field is `.0`:
/// validated names print as their plain text.
macro_rules! string_newtype_display {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}

pub mod credential;
pub mod destination;
pub mod downlink;
pub mod filter_index;
pub mod ids;
pub mod message;
pub mod pipeline;
pub mod secret;
pub mod time;
pub mod topic;
pub mod topic_class;

pub use credential::{EncryptionType, RegisterType};
pub use downlink::{Downlink, DownlinkOutcome, SubDevices};
pub use filter_index::FilterIndex;
pub use ids::{DeviceId, DeviceName, IdError, ProductId, ProductName};
pub use message::{Message, MessageProperties, QoS};
pub use pipeline::{Backpressure, Handover, MessageTap, Offered, Publish, PublishError, Taps};
pub use secret::SecretString;
pub use topic::{Topic, TopicError, TopicFilter};
pub use topic_class::{Privilege, TopicClass};
