//! Gateways (Tencent §6) on `$gateway/operation/${pid}/${dn}`, answered on
//! `$gateway/operation/result/${pid}/${dn}`:
//!
//! - `bind` / `unbind`: `{"type":"bind","payload":{"devices":[{"product_id","device_name",
//!   "signature","random","timestamp","signmethod","authtype"}]}}`; the signature is
//!   base64(HMAC-SHA1|SHA256(key = the sub-device's PSK string as ASCII — not decoded —,
//!   msg = `${product_id}${device_name};${random};${timestamp}`)).
//! - `online` / `offline`: the gateway's connection starts / stops acting for bound
//!   sub-devices (the broker then lets it publish and subscribe on their topics).
//! - `describe_sub_devices`: the bound sub-devices.
//!
//! Replies echo the devices, each with an integer `result`: 0 done, -1 refused (not bound,
//! bad signature, bound elsewhere, over the limit, no such device), -2 the hub failed.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use eddy_core::secret::ExposeSecret as _;
use eddy_core::{DeviceId, Message};
use eddy_registry::RegistryError;
use eddy_store::Page;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use crate::Shared;
use crate::topics::result_topic;

const REFUSED: i64 = -1;
const FAILED: i64 = -2;

pub(crate) async fn answer(
    shared: &Shared,
    gateway: &DeviceId,
    message: &Message,
    client_ip: Option<IpAddr>,
) {
    let request: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
    let kind = request["type"].as_str().unwrap_or("").to_owned();
    let topic = result_topic("gateway", gateway);
    if let Err(err) = shared
        .registry
        .gateway(gateway.product_id.as_str(), gateway.device_name.as_str())
        .await
    {
        tracing::info!(%gateway, error = %err, "gateway request from a device that is not a gateway");
        return;
    }
    if kind == "describe_sub_devices" {
        let reply = match describe(shared, gateway).await {
            Ok(devices) => json!({"type": kind, "payload": {"devices": devices}}),
            Err(err) => {
                tracing::warn!(%gateway, error = %err, "listing sub-devices failed");
                json!({"type": kind, "payload": {"devices": []}, "result": FAILED})
            }
        };
        shared.reply(topic, reply).await;
        return;
    }
    if !matches!(kind.as_str(), "bind" | "unbind" | "online" | "offline") {
        tracing::debug!(%gateway, kind, "unknown $gateway request ignored");
        return;
    }
    let devices = request["payload"]["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut results = Vec::with_capacity(devices.len());
    for device in &devices {
        let product_id = device["product_id"].as_str().unwrap_or("");
        let device_name = device["device_name"].as_str().unwrap_or("");
        let result = match one(shared, gateway, &kind, device, client_ip).await {
            Ok(()) => 0,
            Err(err) if err.is_internal() => {
                tracing::warn!(%gateway, product_id, device_name, error = %err, "sub-device {kind} failed");
                FAILED
            }
            Err(err) => {
                tracing::info!(%gateway, product_id, device_name, error = %err, "sub-device {kind} refused");
                REFUSED
            }
        };
        results.push(json!({
            "product_id": product_id,
            "device_name": device_name,
            "result": result,
        }));
    }
    let reply = json!({"type": kind, "payload": {"devices": results}});
    shared.reply(topic, reply).await;
}

/// One device of a bind / unbind / online / offline request.
async fn one(
    shared: &Shared,
    gateway: &DeviceId,
    kind: &str,
    device: &Value,
    client_ip: Option<IpAddr>,
) -> Result<(), RegistryError> {
    let registry = &shared.registry;
    let product_id = device["product_id"].as_str().unwrap_or("");
    let device_name = device["device_name"].as_str().unwrap_or("");
    let sub = registry.sub_device(product_id, device_name).await?;
    match kind {
        "bind" => {
            check_signature(shared, &sub, device).await?;
            registry.bind(gateway, &sub).await
        }
        "unbind" => {
            shared.links.detach(gateway, &sub).await;
            registry.unbind(gateway, &sub).await
        }
        "online" => {
            if !registry.is_bound(gateway, &sub).await? {
                return Err(not_bound(gateway, &sub));
            }
            if shared.links.attach(gateway, &sub, client_ip).await {
                Ok(())
            } else {
                Err(RegistryError::Crypto(format!(
                    "the gateway {gateway} has no live connection, or {sub} is disabled"
                )))
            }
        }
        _ => {
            if !registry.is_bound(gateway, &sub).await? {
                return Err(not_bound(gateway, &sub));
            }
            shared.links.detach(gateway, &sub).await;
            Ok(())
        }
    }
}

fn not_bound(gateway: &DeviceId, sub: &DeviceId) -> RegistryError {
    RegistryError::NotBound {
        sub: sub.to_string(),
        gateway: gateway.to_string(),
    }
}

/// The bind signature, under the sub-device's PSK string (not base64-decoded).
async fn check_signature(
    shared: &Shared,
    sub: &DeviceId,
    device: &Value,
) -> Result<(), RegistryError> {
    let refused = |why: &str| RegistryError::InvalidParameter {
        field: "signature".into(),
        reason: why.into(),
    };
    let authtype = device["authtype"].as_str().unwrap_or("psk");
    if !authtype.eq_ignore_ascii_case("psk") {
        return Err(refused(
            "only psk sub-devices can be bound over MQTT; bind certificate sub-devices with BindDevices",
        ));
    }
    let text = |key: &str| match &device[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let msg = format!(
        "{}{};{};{}",
        sub.product_id,
        sub.device_name,
        text("random"),
        text("timestamp")
    );
    let record = shared
        .store
        .device(&sub.product_id, &sub.device_name)
        .await?
        .ok_or_else(|| refused("no such device"))?;
    let psk = record
        .psk
        .ok_or_else(|| refused("the sub-device has no PSK"))?;
    let key = psk.expose_secret().as_bytes();
    let expected = match device["signmethod"].as_str().unwrap_or("hmacsha256") {
        m if m.eq_ignore_ascii_case("hmacsha1") => mac::<Hmac<sha1::Sha1>>(key, &msg),
        m if m.eq_ignore_ascii_case("hmacsha256") => mac::<Hmac<sha2::Sha256>>(key, &msg),
        _ => return Err(refused("signmethod must be hmacsha1 or hmacsha256")),
    };
    let given = BASE64
        .decode(device["signature"].as_str().unwrap_or(""))
        .map_err(|_| refused("the signature is not base64"))?;
    if bool::from(expected.ct_eq(&given)) {
        Ok(())
    } else {
        Err(refused("the signature does not match"))
    }
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &str) -> Vec<u8> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(msg.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

async fn describe(shared: &Shared, gateway: &DeviceId) -> Result<Vec<Value>, RegistryError> {
    let mut devices = Vec::new();
    let mut offset = 0;
    loop {
        let page = shared
            .registry
            .sub_devices(gateway, None, Page { offset, limit: 250 })
            .await?;
        if page.items.is_empty() {
            return Ok(devices);
        }
        offset += page.items.len() as u64;
        devices.extend(page.items.iter().map(
            |d| json!({"product_id": d.product_id.as_str(), "device_name": d.device_name.as_str()}),
        ));
    }
}

impl crate::Services {
    /// `gateway` no longer acts for `sub` (after UnbindDevices); false if it did not.
    pub async fn detach_sub_device(&self, gateway: &DeviceId, sub: &DeviceId) -> bool {
        self.shared.links.detach(gateway, sub).await
    }
}
