//! CreateDevice, DescribeDevice, DescribeDevices, DeleteDevice, UpdateDevicesEnableState,
//! UpdateDevicePSK, ResetDeviceState, UpdateDeviceLogLevel.

use eddy_core::secret::{ExposeSecret, secret};
use eddy_registry::{NewDevice, Registry};
use eddy_store::{DeviceFilter, DeviceRecord};
use serde_json::{Map, Value, json};

use super::{object, page};
use crate::ApiState;
use crate::error::ApiError;
use crate::params::Params;

/// `DescribeDevices` `FirmwareVersion` value that selects devices with no version.
const NO_FIRMWARE_VERSION: &str = "None-FirmwareVersion";

/// Tencent's `DeviceInfo` / `DescribeDevice` fields.
fn device_fields(d: &DeviceRecord) -> Value {
    json!({
        "DeviceName": d.name.as_str(),
        "Online": d.online_state().code(),
        "LoginTime": d.login_at.unwrap_or(0),
        "Version": d.firmware_version,
        "LastUpdateTime": d.updated_at,
        "DeviceCert": d.cert_pem.as_deref().unwrap_or(""),
        "DevicePsk": d.psk.as_ref().map(|p| p.expose_secret()).unwrap_or(""),
        "Tags": [],
        "DeviceType": 0,
        "Imei": "",
        "Isp": 0,
        "ConnIP": 0,
        "NbiotDeviceID": "",
        "LoraDevEui": "",
        "LoraMoteType": 0,
        "LogLevel": d.log_level,
        "FirstOnlineTime": d.first_online_at.unwrap_or(0),
        "LastOfflineTime": d.last_offline_at.unwrap_or(0),
        "CreateTime": d.created_at,
        // The private key of a certificate device is handed out once, at creation.
        "CertState": i64::from(d.cert_pem.is_some()),
        "EnableState": i64::from(d.enabled),
        "Labels": [],
        "ClientIP": d.client_ip.as_deref().unwrap_or(""),
        "FirmwareUpdateTime": 0,
        "CreateUserId": 0,
        "NBIoTDeviceID": "",
    })
}

pub(super) async fn create(
    registry: &Registry,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let name = p.str("DeviceName")?;
    let defined_psk = p.opt_str("DefinedPsk")?.map(secret);
    if p.opt_str("TlsCrt")?.is_some() {
        return Err(ApiError::new(
            "UnsupportedOperation",
            "TlsCrt (a device certificate from a private CA) is not supported yet; \
             omit it and the hub issues the certificate.",
        ));
    }
    // Device tags and the NB-IoT / LoRa fields are accepted for SDK compatibility; Eddy
    // serves MQTT and CoAP devices and keeps no tags yet.
    p.ignore(&[
        "Attribute",
        "Isp",
        "Imei",
        "LoraDevEui",
        "LoraMoteType",
        "Skey",
        "LoraAppKey",
    ]);
    p.finish()?;
    let created = registry
        .create_device(NewDevice {
            product_id,
            name,
            defined_psk,
        })
        .await?;
    let d = &created.record;
    Ok(object(json!({
        "DeviceName": d.name.as_str(),
        "DevicePsk": d.psk.as_ref().map(|p| p.expose_secret()).unwrap_or(""),
        "DeviceCert": d.cert_pem.as_deref().unwrap_or(""),
        "DevicePrivateKey": created.private_key_pem.as_ref().map(|k| k.expose_secret()).unwrap_or(""),
    })))
}

pub(super) async fn describe(
    registry: &Registry,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let name = p.str("DeviceName")?;
    p.finish()?;
    let device = registry.device(&product_id, &name).await?;
    Ok(object(device_fields(&device)))
}

pub(super) async fn list(registry: &Registry, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let page = page(p)?;
    let enabled = match p.opt_i64("EnableState")? {
        None => None,
        Some(0) => Some(false),
        Some(1) => Some(true),
        Some(other) => {
            return Err(ApiError::invalid(
                "EnableState",
                format!("must be 0 (disabled) or 1 (enabled), got {other}"),
            ));
        }
    };
    let filter = DeviceFilter {
        name_contains: p.opt_str("DeviceName")?.filter(|n| !n.is_empty()),
        enabled,
        firmware_version: p.opt_str("FirmwareVersion")?.map(|v| {
            if v == NO_FIRMWARE_VERSION {
                String::new()
            } else {
                v
            }
        }),
    };
    p.finish()?;
    let devices = registry.list_devices(&product_id, &filter, page).await?;
    Ok(object(json!({
        "TotalCount": devices.total,
        "Devices": devices.items.iter().map(device_fields).collect::<Vec<_>>(),
    })))
}

pub(super) async fn delete(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let name = p.str("DeviceName")?;
    p.ignore(&["Skey"]);
    p.finish()?;
    state.registry.delete_device(&product_id, &name).await?;
    disconnect(state, &product_id, std::slice::from_ref(&name)).await;
    Ok(Map::new())
}

/// Ends the live connections of devices an administrator disabled, deleted or reset:
/// their permission to be connected was checked at CONNECT only.
async fn disconnect(state: &ApiState, product_id: &str, names: &[String]) {
    let Some(downlink) = &state.downlink else {
        return;
    };
    let Ok(product_id) = eddy_core::ProductId::parse(product_id) else {
        return;
    };
    for name in names {
        if let Ok(name) = eddy_core::DeviceName::parse(name) {
            let device = eddy_core::DeviceId::new(product_id.clone(), name);
            if downlink.disconnect_device(&device).await {
                tracing::info!(%device, "disconnected by an administrator's change");
            }
        }
    }
}

pub(super) async fn set_enable_state(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let names = p.str_list("DeviceNames")?;
    let enabled = match p.i64("Status")? {
        0 => false,
        1 => true,
        other => {
            return Err(ApiError::invalid(
                "Status",
                format!("must be 0 (disable) or 1 (enable), got {other}"),
            ));
        }
    };
    p.finish()?;
    state
        .registry
        .set_devices_enabled(&product_id, &names, enabled)
        .await?;
    if !enabled {
        disconnect(state, &product_id, &names).await;
    }
    Ok(Map::new())
}

pub(super) async fn update_psk(
    registry: &Registry,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let name = p.str("DeviceName")?;
    let psk = secret(p.str("Psk")?);
    p.finish()?;
    registry.update_device_psk(&product_id, &name, &psk).await?;
    Ok(Map::new())
}

pub(super) async fn reset_state(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let names = p.str_list("DeviceNames")?;
    p.finish()?;
    // A reset device starts from nothing: its connection goes first.
    disconnect(state, &product_id, &names).await;
    let outcomes = state
        .registry
        .reset_device_state(&product_id, &names)
        .await?;
    let success_count = outcomes.iter().filter(|o| o.success).count();
    Ok(object(json!({
        "SuccessCount": success_count,
        "ResetDeviceResults": outcomes.iter().map(|o| json!({
            "DeviceName": o.device_name,
            "Success": o.success,
            "Reason": o.reason.as_deref().unwrap_or(""),
        })).collect::<Vec<_>>(),
    })))
}

/// UpdateDeviceLogLevel: stores the level and, when the device is connected, tells it
/// right away on `$log/operation/result/…` (otherwise it reads it with its next
/// `get_log_level`).
pub(super) async fn update_log_level(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let name = p.str("DeviceName")?;
    let level = p.i64("LogLevel")?;
    p.finish()?;
    let device = state
        .registry
        .set_device_log_level(&product_id, &name, level)
        .await?;
    if let Some(services) = &state.services {
        let id = eddy_core::DeviceId::new(device.product_id, device.name);
        services.push_log_level(&id, level).await;
    }
    Ok(Map::new())
}
