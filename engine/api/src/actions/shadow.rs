//! DescribeDeviceShadow, UpdateDeviceShadow, DeleteDeviceShadow: the management plane's
//! side of the device shadow (the state lives in `eddy-services`).

use eddy_core::DeviceId;
use eddy_services::shadow::{Change, update_reply};
use eddy_services::{Services, ShadowError};
use serde_json::{Map, Value, json};

use super::object;
use crate::ApiState;
use crate::error::ApiError;
use crate::params::Params;

/// Largest `State` text UpdateDeviceShadow takes (Tencent: 8 KB).
const MAX_STATE_BYTES: usize = 8 * 1024;

pub(super) async fn describe(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let (services, device) = device_of(state, p).await?;
    let view = services.shadow(&device).await.map_err(shadow_error)?;
    Ok(object(
        json!({ "Data": view.reply(&Value::Null).to_string() }),
    ))
}

pub(super) async fn update(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let text = p.str("State")?;
    let version = p.i64("ShadowVersion")?;
    if version < 0 {
        return Err(ApiError::invalid("ShadowVersion", "must be 0 or more"));
    }
    if text.len() > MAX_STATE_BYTES {
        return Err(ApiError::new(
            "InvalidParameterValue.JSONSizeExceedLimit",
            format!(
                "State has {} bytes; at most {MAX_STATE_BYTES} are allowed.",
                text.len()
            ),
        ));
    }
    let parsed: Value = serde_json::from_str(&text).map_err(|e| {
        ApiError::new(
            "InvalidParameterValue.InvalidJSON",
            format!("State is not JSON: {e}"),
        )
    })?;
    // The management plane sets only what it desires.
    let only_desired = parsed
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key("desired"));
    if !only_desired {
        return Err(ApiError::new(
            "InvalidParameterValue.JSONHasInvalidNode",
            "State must be {\"desired\":{…}} (or {\"desired\":null}).",
        ));
    }
    let change = Change::from_state(&parsed, false).map_err(shadow_error)?;
    let (services, device) = device_of(state, p).await?;
    let view = services
        .update_shadow(&device, &change, version)
        .await
        .map_err(shadow_error)?;
    Ok(object(json!({
        "Data": update_reply(&change, &view.document).to_string(),
    })))
}

pub(super) async fn delete(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let (services, device) = device_of(state, p).await?;
    if services
        .delete_shadow(&device)
        .await
        .map_err(shadow_error)?
    {
        Ok(Map::new())
    } else {
        Err(ApiError::new(
            "ResourceNotFound.DeviceShadowNotExist",
            format!("The device {device} has no shadow."),
        ))
    }
}

/// Reads `ProductId` and `DeviceName` (refusing any other parameter left unread) and
/// checks the device exists.
async fn device_of<'a>(
    state: &'a ApiState,
    p: &Params,
) -> Result<(&'a Services, DeviceId), ApiError> {
    let product_id = p.str("ProductId")?;
    let device_name = p.str("DeviceName")?;
    p.finish()?;
    let record = state.registry.device(&product_id, &device_name).await?;
    let services = services(state)?;
    Ok((services, DeviceId::new(record.product_id, record.name)))
}

/// The device services, or the error of a hub that runs none.
pub(super) fn services(state: &ApiState) -> Result<&Services, ApiError> {
    state.services.as_deref().ok_or_else(|| {
        ApiError::new(
            "FailedOperation",
            "This hub runs no device services (no MQTT broker).",
        )
    })
}

fn shadow_error(err: ShadowError) -> ApiError {
    match err {
        ShadowError::VersionConflict { given, current } => ApiError::new(
            "FailedOperation.UpdateVersionNotMatch",
            format!("ShadowVersion {given} is not the shadow's version {current}."),
        ),
        ShadowError::TooLarge(why) => ApiError::new(
            "InvalidParameterValue.JSONSizeExceedLimit",
            format!("The shadow would exceed its limits: {why}."),
        ),
        ShadowError::Invalid(why) => ApiError::new("InvalidParameterValue.JSONHasInvalidNode", why),
        ShadowError::Internal(why) => {
            tracing::error!(error = %why, "shadow operation failed");
            ApiError::internal()
        }
    }
}
