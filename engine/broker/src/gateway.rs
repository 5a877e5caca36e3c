//! Gateways acting for their sub-devices (Tencent §6). Once the device services say a
//! sub-device is online through a gateway ([`eddy_core::SubDevices::attach`]), the
//! gateway's connection may publish and subscribe on that sub-device's topics (its
//! product's topic classes, expanded with the sub-device's identity), and messages to the
//! sub-device go to the gateway. When the gateway's connection ends, its sub-devices go
//! offline with it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use eddy_core::{DeviceId, Topic, TopicFilter};

use crate::acl::DevicePermissions;

/// The sub-devices each gateway connection acts for.
#[derive(Debug, Default)]
pub(crate) struct Proxies(RwLock<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Gateway ClientId → its sub-devices and their permissions.
    by_gateway: HashMap<Arc<str>, HashMap<DeviceId, DevicePermissions>>,
    /// Sub-device → its gateway.
    by_sub: HashMap<DeviceId, DeviceId>,
}

impl Proxies {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `gateway` acts for `sub` with `permissions` (replacing any earlier gateway of it).
    pub(crate) fn insert(&self, gateway: &DeviceId, sub: DeviceId, permissions: DevicePermissions) {
        let mut inner = self.write();
        if let Some(previous) = inner.by_sub.insert(sub.clone(), gateway.clone())
            && let Some(subs) = inner.by_gateway.get_mut(previous.client_id().as_str())
        {
            subs.remove(&sub);
        }
        inner
            .by_gateway
            .entry(Arc::from(gateway.client_id().as_str()))
            .or_default()
            .insert(sub, permissions);
    }

    /// False if `gateway` did not act for `sub`.
    pub(crate) fn remove(&self, gateway: &DeviceId, sub: &DeviceId) -> bool {
        let mut inner = self.write();
        if inner.by_sub.get(sub) != Some(gateway) {
            return false;
        }
        inner.by_sub.remove(sub);
        let key = gateway.client_id();
        if let Some(subs) = inner.by_gateway.get_mut(key.as_str()) {
            subs.remove(sub);
            if subs.is_empty() {
                inner.by_gateway.remove(key.as_str());
            }
        }
        true
    }

    /// Ends everything the gateway with this ClientId acted for; returns those sub-devices.
    pub(crate) fn take_gateway(&self, gateway_client_id: &str) -> Vec<DeviceId> {
        let mut inner = self.write();
        let Some(subs) = inner.by_gateway.remove(gateway_client_id) else {
            return Vec::new();
        };
        for sub in subs.keys() {
            inner.by_sub.remove(sub);
        }
        subs.into_keys().collect()
    }

    pub(crate) fn gateway_of(&self, sub: &DeviceId) -> Option<DeviceId> {
        self.read().by_sub.get(sub).cloned()
    }

    /// Whether the gateway with this ClientId may publish `topic` for a sub-device.
    pub(crate) fn may_publish(&self, gateway_client_id: &str, topic: &Topic) -> bool {
        self.read()
            .by_gateway
            .get(gateway_client_id)
            .is_some_and(|subs| subs.values().any(|p| p.may_publish(topic)))
    }

    /// Whether the gateway with this ClientId may subscribe to `filter` for a sub-device.
    pub(crate) fn may_subscribe(&self, gateway_client_id: &str, filter: &TopicFilter) -> bool {
        self.read()
            .by_gateway
            .get(gateway_client_id)
            .is_some_and(|subs| subs.values().any(|p| p.may_subscribe(filter)))
    }
}

#[cfg(test)]
mod tests {
    use eddy_core::{DeviceName, ProductId, TopicClass};

    use super::*;

    fn id(pid: &str, dn: &str) -> DeviceId {
        DeviceId::new(
            ProductId::parse(pid).unwrap(),
            DeviceName::parse(dn).unwrap(),
        )
    }

    #[test]
    fn a_gateway_acts_only_for_its_attached_sub_devices() {
        let proxies = Proxies::default();
        let (gw, sub, other) = (
            id("GATEWAY001", "gw"),
            id("SUBPROD001", "s1"),
            id("SUBPROD001", "s2"),
        );
        let perms = DevicePermissions::for_device(&sub, &TopicClass::defaults());
        proxies.insert(&gw, sub.clone(), perms);
        let gw_client = gw.client_id();
        assert!(proxies.may_publish(&gw_client, &Topic::parse("SUBPROD001/s1/event").unwrap()));
        assert!(!proxies.may_publish(&gw_client, &Topic::parse("SUBPROD001/s2/event").unwrap()));
        assert!(proxies.may_subscribe(
            &gw_client,
            &TopicFilter::parse("SUBPROD001/s1/control").unwrap()
        ));
        assert!(!proxies.may_publish(
            "SOMEONEELSgw",
            &Topic::parse("SUBPROD001/s1/event").unwrap()
        ));
        assert_eq!(proxies.gateway_of(&sub), Some(gw.clone()));
        assert!(!proxies.remove(&gw, &other));
        assert_eq!(proxies.take_gateway(&gw_client), vec![sub.clone()]);
        assert_eq!(proxies.gateway_of(&sub), None);
        assert!(!proxies.may_publish(&gw_client, &Topic::parse("SUBPROD001/s1/event").unwrap()));
    }
}
