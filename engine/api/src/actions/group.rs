//! Device groups, Eddy's own actions (Tencent's iotcloud API has none): CreateDeviceGroup,
//! DeleteDeviceGroup, DescribeDeviceGroups, AddDevicesToGroup, RemoveDevicesFromGroup,
//! DescribeGroupDevices. A group is the target of BatchUpdateFirmware and
//! PublishBroadcastMessage through their (Eddy's) `GroupName` parameter.

use serde_json::{Map, Value, json};

use super::{object, page};
use crate::ApiState;
use crate::error::ApiError;
use crate::params::Params;

pub(super) async fn create(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let name = p.str("GroupName")?;
    let description = p.opt_str("GroupDescription")?.unwrap_or_default();
    p.finish()?;
    state.registry.create_group(&name, &description).await?;
    Ok(Map::new())
}

pub(super) async fn delete(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let name = p.str("GroupName")?;
    p.finish()?;
    state.registry.delete_group(&name).await?;
    Ok(Map::new())
}

pub(super) async fn list(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let page = page(p)?;
    p.finish()?;
    let listed = state.registry.list_groups(page).await?;
    let groups: Vec<Value> = listed
        .items
        .iter()
        .map(|g| {
            json!({
                "GroupName": g.name,
                "GroupDescription": g.description,
                "DeviceCount": g.devices,
                "CreateTime": g.created_at,
            })
        })
        .collect();
    Ok(object(
        json!({ "TotalCount": listed.total, "Groups": groups }),
    ))
}

/// `GroupName` and `Devices: [{ProductId, DeviceName}]`, the devices checked to exist.
async fn members(
    state: &ApiState,
    p: &Params,
) -> Result<(String, Vec<eddy_core::DeviceId>), ApiError> {
    let name = p.str("GroupName")?;
    let mut names = Vec::new();
    for device in p.object_list("Devices")? {
        names.push((device.str("ProductId")?, device.str("DeviceName")?));
        device.finish()?;
    }
    p.finish()?;
    if names.is_empty() {
        return Err(ApiError::invalid("Devices", "must not be empty"));
    }
    Ok((name, state.registry.devices(&names).await?))
}

pub(super) async fn add(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let (name, devices) = members(state, p).await?;
    state.registry.add_to_group(&name, &devices).await?;
    Ok(Map::new())
}

pub(super) async fn remove(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let (name, devices) = members(state, p).await?;
    let removed = state.registry.remove_from_group(&name, &devices).await?;
    Ok(object(json!({ "RemovedCount": removed })))
}

pub(super) async fn devices(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let name = p.str("GroupName")?;
    let product = p.opt_str("ProductId")?;
    let page = page(p)?;
    p.finish()?;
    let listed = state
        .registry
        .group_devices(&name, product.as_deref(), page)
        .await?;
    let devices: Vec<Value> = listed
        .items
        .iter()
        .map(|d| json!({"ProductId": d.product_id.as_str(), "DeviceName": d.device_name.as_str()}))
        .collect();
    Ok(object(
        json!({ "TotalCount": listed.total, "Devices": devices }),
    ))
}
