//! What a Tencent device may publish and subscribe to.
//!
//! A device's permissions are its product's topic classes (Tencent's defaults plus the
//! custom ones) with `${productId}` and `${deviceName}` filled in with its own identity, so
//! no template can ever reach another device's topics. Publishing needs a class with the
//! publish privilege that matches the topic. Subscribing needs a class with the subscribe
//! privilege that covers the whole filter: a wildcard is allowed only where every topic it
//! could match is permitted (`${pid}/${dn}/+` is refused, since it also matches the
//! publish-only `event` topic and topics no class names).

use eddy_core::{DeviceId, Topic, TopicClass, TopicFilter};

/// One device's expanded permissions.
#[derive(Debug, Clone, Default)]
pub struct DevicePermissions {
    publish: Vec<TopicFilter>,
    subscribe: Vec<TopicFilter>,
}

impl DevicePermissions {
    /// Expands `classes` for `device`.
    pub fn for_device(device: &DeviceId, classes: &[TopicClass]) -> Self {
        let mut out = Self::default();
        for class in classes {
            // Names are validated ([a-zA-Z0-9:_-]), so an expansion is always a valid
            // filter; a template that is not (a corrupt custom class) grants nothing.
            let Ok(filter) = TopicFilter::parse(&class.expand(device)) else {
                continue;
            };
            if class.privilege.may_publish() {
                out.publish.push(filter.clone());
            }
            if class.privilege.may_subscribe() {
                out.subscribe.push(filter);
            }
        }
        out
    }

    pub fn may_publish(&self, topic: &Topic) -> bool {
        self.publish.iter().any(|f| f.matches(topic))
    }

    pub fn may_subscribe(&self, filter: &TopicFilter) -> bool {
        self.subscribe.iter().any(|f| filter.is_covered_by(f))
    }
}

#[cfg(test)]
mod tests {
    use eddy_core::{DeviceName, Privilege, ProductId};

    use super::*;

    fn perms() -> DevicePermissions {
        let device = DeviceId::new(
            ProductId::parse("ABCDE12345").unwrap(),
            DeviceName::parse("dev1").unwrap(),
        );
        let mut classes = TopicClass::defaults();
        classes.push(TopicClass::custom("custom/up", Privilege::Publish));
        classes.push(TopicClass::custom(
            "custom/both",
            Privilege::PublishSubscribe,
        ));
        DevicePermissions::for_device(&device, &classes)
    }

    fn topic(s: &str) -> Topic {
        Topic::parse(s).unwrap()
    }

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::parse(s).unwrap()
    }

    #[test]
    fn own_topics_by_privilege() {
        let p = perms();
        for ok in [
            "ABCDE12345/dev1/event",
            "ABCDE12345/dev1/data",
            "$shadow/operation/ABCDE12345/dev1",
            "$ota/report/ABCDE12345/dev1",
            "$rrpc/txd/ABCDE12345/dev1/12345",
            "ABCDE12345/dev1/custom/up",
            "ABCDE12345/dev1/custom/both",
        ] {
            assert!(p.may_publish(&topic(ok)), "publish {ok}");
        }
        for no in [
            "ABCDE12345/dev1/control",
            "$shadow/operation/result/ABCDE12345/dev1",
            "ABCDE12345/dev1/undeclared",
            "ABCDE12345/dev1/custom/up/deeper",
        ] {
            assert!(!p.may_publish(&topic(no)), "publish {no}");
        }
        for ok in [
            "ABCDE12345/dev1/control",
            "ABCDE12345/dev1/data",
            "$shadow/operation/result/ABCDE12345/dev1",
            "$rrpc/rxd/ABCDE12345/dev1/+",
            "$rrpc/rxd/ABCDE12345/dev1/777",
            "ABCDE12345/dev1/custom/both",
        ] {
            assert!(p.may_subscribe(&filter(ok)), "subscribe {ok}");
        }
        for no in ["ABCDE12345/dev1/event", "ABCDE12345/dev1/custom/up"] {
            assert!(!p.may_subscribe(&filter(no)), "subscribe {no}");
        }
    }

    #[test]
    fn other_devices_and_broad_wildcards_are_refused() {
        let p = perms();
        for no in [
            "ABCDE12345/dev2/event",
            "ABCDE12345/dev10/event",
            "OTHER12345/dev1/event",
            "$shadow/operation/ABCDE12345/dev2",
        ] {
            assert!(!p.may_publish(&topic(no)), "publish {no}");
        }
        for no in [
            "#",
            "+/+/+",
            "ABCDE12345/#",
            "ABCDE12345/+/control",
            "ABCDE12345/dev1/+",
            "ABCDE12345/dev1/#",
            "$rrpc/rxd/ABCDE12345/dev1/#",
            "$rrpc/rxd/ABCDE12345/+/1",
            "ABCDE12345/dev2/control",
        ] {
            assert!(!p.may_subscribe(&filter(no)), "subscribe {no}");
        }
    }
}
