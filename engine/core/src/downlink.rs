//! Messages from the management plane to one device (Tencent's `PublishMessage`): the API
//! calls this trait, the broker implements it, and neither imports the other.

use crate::{DeviceId, Message};

/// What happened to a downlink message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownlinkOutcome {
    /// Handed to the device's live connection.
    Delivered,
    /// The device has no live connection.
    DeviceOffline,
    /// The device is connected but not subscribed to the topic.
    NoSubscription,
    /// The device is offline with a persistent session subscribed to the topic: the QoS 1
    /// message is stored durably and delivered when it reconnects.
    Saved,
    /// The message could not be stored (the durable log failed).
    Failed,
}

#[async_trait::async_trait]
pub trait Downlink: Send + Sync + std::fmt::Debug + 'static {
    /// Delivers `message` to `device` only (never to other subscribers of the topic).
    async fn send_to_device(&self, device: &DeviceId, message: Message) -> DownlinkOutcome;

    /// Ends `device`'s live connection, if it has one (it was disabled, deleted or reset
    /// by an administrator); returns whether it had one.
    async fn disconnect_device(&self, device: &DeviceId) -> bool;
}

/// Gateways speaking for their sub-devices (Tencent §6): the device services tell the
/// broker which sub-devices a gateway's live connection acts for, and the broker lets that
/// connection publish and subscribe on their topics and delivers their messages to it.
#[async_trait::async_trait]
pub trait SubDevices: Send + Sync + std::fmt::Debug + 'static {
    /// From now on `gateway`'s live connection acts for `sub` (which is then online,
    /// seen from `client_ip`); false if the gateway has no live connection or `sub` does
    /// not exist.
    async fn attach(
        &self,
        gateway: &DeviceId,
        sub: &DeviceId,
        client_ip: Option<std::net::IpAddr>,
    ) -> bool;
    /// `gateway` no longer acts for `sub` (which is then offline); false if it did not.
    async fn detach(&self, gateway: &DeviceId, sub: &DeviceId) -> bool;
    /// The gateway whose connection acts for `sub` right now, if any.
    fn gateway_of(&self, sub: &DeviceId) -> Option<DeviceId>;
}
