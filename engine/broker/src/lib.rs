//! # eddy-broker — transport → auth/ACL/limits → router
//!
//! The MQTT broker core (issue B). Built so far, as pure, tested modules the transport
//! will call:
//!
//! - [`device_auth`]: Tencent's key authentication — the `${ClientId};${sdkappid};
//!   ${connid};${expiry}` username and the HMAC-SHA1/HMAC-SHA256 password.
//! - [`acl`]: a device's permissions, from its product's topic classes expanded with its
//!   own identity; wildcard subscriptions only where every reachable topic is permitted.
//!
//! Still to come (see ARCHITECTURE.md): the TCP listener on rmqtt-codec, sessions, the
//! router, durable offline queues, limits and device status. This crate will never import
//! the rule engine: accepted messages leave through a trait in `eddy-core`.

pub mod acl;
pub mod device_auth;
