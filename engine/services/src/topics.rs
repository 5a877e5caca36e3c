//! The reserved topics the services answer on, parsed from an accepted message's topic.

use eddy_core::{DeviceId, DeviceName, ProductId};

/// A device's request to a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// `$shadow/operation/${pid}/${dn}`
    Shadow(DeviceId),
    /// `$sys/operation/${pid}/${dn}`
    Sys(DeviceId),
    /// `$log/operation/${pid}/${dn}`
    Log(DeviceId),
    /// `$ota/report/${pid}/${dn}`
    Ota(DeviceId),
    /// `$gateway/operation/${pid}/${dn}`
    Gateway(DeviceId),
    /// `$rrpc/txd/${pid}/${dn}/${processId}`: a device's answer to an RRPC call.
    RrpcReply(DeviceId, u64),
}

impl Request {
    /// The request `topic` carries, if it is one of the services' topics.
    pub(crate) fn parse(topic: &str) -> Option<Self> {
        if !topic.starts_with('$') {
            return None;
        }
        let mut levels = topic.split('/');
        let (first, second) = (levels.next()?, levels.next()?);
        let device = |pid: &str, dn: &str| {
            Some(DeviceId::new(
                ProductId::parse(pid).ok()?,
                DeviceName::parse(dn).ok()?,
            ))
        };
        let rest: Vec<&str> = levels.collect();
        match (first, second, rest.as_slice()) {
            ("$shadow", "operation", [pid, dn]) => device(pid, dn).map(Self::Shadow),
            ("$sys", "operation", [pid, dn]) => device(pid, dn).map(Self::Sys),
            ("$log", "operation", [pid, dn]) => device(pid, dn).map(Self::Log),
            ("$ota", "report", [pid, dn]) => device(pid, dn).map(Self::Ota),
            ("$gateway", "operation", [pid, dn]) => device(pid, dn).map(Self::Gateway),
            ("$rrpc", "txd", [pid, dn, id]) => {
                let id = id.parse().ok()?;
                device(pid, dn).map(|d| Self::RrpcReply(d, id))
            }
            _ => None,
        }
    }
}

/// Where a service answers `device`: `$<service>/operation/result/${pid}/${dn}`.
pub(crate) fn result_topic(service: &str, device: &DeviceId) -> String {
    format!(
        "${service}/operation/result/{}/{}",
        device.product_id, device.device_name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(pid: &str, dn: &str) -> DeviceId {
        DeviceId::new(
            ProductId::parse(pid).unwrap(),
            DeviceName::parse(dn).unwrap(),
        )
    }

    #[test]
    fn parses_service_topics() {
        let d = dev("ABCDE12345", "dev_1");
        assert_eq!(
            Request::parse("$shadow/operation/ABCDE12345/dev_1"),
            Some(Request::Shadow(d.clone()))
        );
        assert_eq!(
            Request::parse("$sys/operation/ABCDE12345/dev_1"),
            Some(Request::Sys(d.clone()))
        );
        assert_eq!(
            Request::parse("$log/operation/ABCDE12345/dev_1"),
            Some(Request::Log(d.clone()))
        );
        assert_eq!(
            Request::parse("$ota/report/ABCDE12345/dev_1"),
            Some(Request::Ota(d.clone()))
        );
        assert_eq!(
            Request::parse("$rrpc/txd/ABCDE12345/dev_1/42"),
            Some(Request::RrpcReply(d.clone(), 42))
        );
        assert_eq!(
            result_topic("shadow", &d),
            "$shadow/operation/result/ABCDE12345/dev_1"
        );
        for other in [
            "ABCDE12345/dev_1/data",
            "$shadow/operation/result/ABCDE12345/dev_1",
            "$shadow/operation/ABCDE12345",
            "$shadow/operation/short/dev_1",
            "$rrpc/txd/ABCDE12345/dev_1/not-a-number",
            "$rrpc/rxd/ABCDE12345/dev_1/1",
            "$ota/update/ABCDE12345/dev_1",
        ] {
            assert_eq!(Request::parse(other), None, "{other}");
        }
    }
}
