//! BindDevices, UnbindDevices, DescribeGatewayBindDevices: a gateway device's sub-devices
//! (Tencent §6). Gateways bind over MQTT too (`$gateway/operation`, in `eddy-services`).

use eddy_core::DeviceId;
use serde_json::{Map, Value, json};

use super::{object, page};
use crate::ApiState;
use crate::error::ApiError;
use crate::params::Params;

/// The gateway, the sub-devices' product and their names, all checked.
async fn gateway_and_subs(
    state: &ApiState,
    p: &Params,
) -> Result<(DeviceId, Vec<DeviceId>), ApiError> {
    let gateway_product = p.str("GatewayProductId")?;
    let gateway_name = p.str("GatewayDeviceName")?;
    let product = p.str("ProductId")?;
    let names = p.str_list("DeviceNames")?;
    // Tencent's key for certificate sub-devices; Eddy binds by the registry alone.
    p.ignore(&["Skey"]);
    p.finish()?;
    if names.is_empty() {
        return Err(ApiError::invalid("DeviceNames", "must not be empty"));
    }
    let registry = &state.registry;
    let gateway = registry.gateway(&gateway_product, &gateway_name).await?;
    let mut subs = Vec::with_capacity(names.len());
    for name in &names {
        subs.push(registry.sub_device(&product, name).await?);
    }
    Ok((gateway, subs))
}

pub(super) async fn bind(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let (gateway, subs) = gateway_and_subs(state, p).await?;
    for sub in &subs {
        state.registry.bind(&gateway, sub).await?;
    }
    Ok(Map::new())
}

pub(super) async fn unbind(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let (gateway, subs) = gateway_and_subs(state, p).await?;
    for sub in &subs {
        state.registry.unbind(&gateway, sub).await?;
        // An unbound sub-device is no longer online through the gateway.
        if let Some(services) = &state.services {
            services.detach_sub_device(&gateway, sub).await;
        }
    }
    Ok(Map::new())
}

pub(super) async fn list(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let gateway_product = p.str("GatewayProductId")?;
    let gateway_name = p.str("GatewayDeviceName")?;
    let product = p.opt_str("ProductId")?;
    let page = page(p)?;
    p.finish()?;
    let registry = &state.registry;
    let gateway = registry.gateway(&gateway_product, &gateway_name).await?;
    let listed = registry
        .sub_devices(&gateway, product.as_deref(), page)
        .await?;
    let product_name = match &product {
        Some(id) => registry.product(id).await?.name.as_str().to_owned(),
        None => String::new(),
    };
    let devices: Vec<Value> = listed
        .items
        .iter()
        .map(|d| json!({"DeviceName": d.device_name.as_str(), "ProductId": d.product_id.as_str()}))
        .collect();
    Ok(object(json!({
        "GatewayDeviceName": gateway.device_name.as_str(),
        "TotalCount": listed.total,
        "Devices": devices,
        "ProductName": product_name,
    })))
}
