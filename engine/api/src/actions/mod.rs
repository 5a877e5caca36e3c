//! The Cloud API actions, one module per resource. Each handler reads its parameters
//! (refusing unknown ones), calls the registry, and returns the response fields with
//! Tencent's names and types (the Python SDK's models are the reference).

mod delivery;
mod device;
mod firmware;
mod gateway;
mod group;
mod logs;
mod message;
mod product;
mod rule;
mod shadow;
mod topic_policy;

use eddy_core::IdError;
use eddy_store::Page;
use serde_json::{Map, Value};

use crate::ApiState;
use crate::error::ApiError;
use crate::params::Params;

pub(crate) async fn dispatch(
    state: &ApiState,
    action: &str,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let registry = &state.registry;
    match action {
        "CreateProduct" => product::create(registry, p).await,
        "DescribeProduct" => product::describe(registry, p).await,
        "DescribeProducts" => product::list(registry, p).await,
        "DeleteProduct" => product::delete(registry, p).await,
        "UpdateProductDynamicRegister" => product::update_dynamic_register(registry, p).await,
        "CreateDevice" => device::create(registry, p).await,
        "DescribeDevice" => device::describe(registry, p).await,
        "DescribeDevices" => device::list(registry, p).await,
        "DeleteDevice" => device::delete(state, p).await,
        "UpdateDevicesEnableState" => device::set_enable_state(state, p).await,
        "UpdateDevicePSK" => device::update_psk(registry, p).await,
        "ResetDeviceState" => device::reset_state(state, p).await,
        "PublishMessage" => message::publish(state, p).await,
        "PublishRRPCMessage" => message::rrpc(state, p).await,
        "PublishBroadcastMessage" => message::broadcast(state, p).await,
        "ListLog" => logs::list(state, p).await,
        "ListLogPayload" => logs::list_payload(state, p).await,
        "ListSDKLog" => logs::list_sdk(state, p).await,
        "QueryDeviceLogs" => logs::query(state, p).await,
        "CreateDeviceGroup" => group::create(state, p).await,
        "DeleteDeviceGroup" => group::delete(state, p).await,
        "DescribeDeviceGroups" => group::list(state, p).await,
        "AddDevicesToGroup" => group::add(state, p).await,
        "RemoveDevicesFromGroup" => group::remove(state, p).await,
        "DescribeGroupDevices" => group::devices(state, p).await,
        "BindDevices" => gateway::bind(state, p).await,
        "UnbindDevices" => gateway::unbind(state, p).await,
        "DescribeGatewayBindDevices" => gateway::list(state, p).await,
        "GetCOSURL" => firmware::cos_url(state, p).await,
        "UploadFirmware" => firmware::upload(state, p).await,
        "DescribeFirmware" => firmware::describe(state, p).await,
        "ListFirmwares" => firmware::list(state, p).await,
        "EditFirmware" => firmware::edit(state, p).await,
        "GetAllVersion" => firmware::all_versions(state, p).await,
        "BatchUpdateFirmware" => firmware::batch_update(state, p).await,
        "DescribeFirmwareTask" => firmware::describe_task(state, p).await,
        "DescribeFirmwareTasks" => firmware::list_tasks(state, p).await,
        "DescribeFirmwareTaskDevices" => firmware::task_devices(state, p).await,
        "DescribeFirmwareTaskDistribution" => firmware::distribution(state, p).await,
        "DescribeFirmwareTaskStatistics" => firmware::statistics(state, p).await,
        "CancelDeviceFirmwareTask" => firmware::cancel_device(state, p).await,
        "RetryDeviceFirmwareTask" => firmware::retry_device(state, p).await,
        "DescribeDeviceShadow" => shadow::describe(state, p).await,
        "UpdateDeviceShadow" => shadow::update(state, p).await,
        "DeleteDeviceShadow" => shadow::delete(state, p).await,
        "UpdateDeviceLogLevel" => device::update_log_level(state, p).await,
        "CreateTopicPolicy" => topic_policy::create(registry, p).await,
        "UpdateTopicPolicy" => topic_policy::update(registry, p).await,
        "DescribeTopicPolicies" => topic_policy::list(registry, p).await,
        "CreateTopicRule" => rule::create(state, p).await,
        "DescribeTopicRule" => rule::describe(state, p).await,
        "ListTopicRules" => rule::list(state, p).await,
        "ReplaceTopicRule" => rule::replace(state, p).await,
        "EnableTopicRule" => rule::set_enabled(state, p, true).await,
        "DisableTopicRule" => rule::set_enabled(state, p, false).await,
        "DeleteTopicRule" => rule::delete(state, p).await,
        "TestTopicRule" => rule::test(state, p).await,
        "DescribeDeliveryQueues" => delivery::queues(state, p).await,
        "ListDeadLetters" => delivery::list(state, p).await,
        "DescribeDeadLetter" => delivery::describe(state, p).await,
        "RedriveDeadLetters" => delivery::redrive(state, p).await,
        other => Err(ApiError::new(
            "InvalidAction",
            format!("The action {other:?} does not exist or is not supported by Eddy."),
        )),
    }
}

impl From<IdError> for ApiError {
    fn from(err: IdError) -> Self {
        ApiError::invalid(err.field, err.reason)
    }
}

/// Unwraps a `json!({…})` object.
fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Largest page size (Tencent: `Limit` 10–250).
const MAX_LIMIT: i64 = 250;
/// Page size when `Limit` is absent.
const DEFAULT_LIMIT: i64 = 10;

/// `Offset` (default 0) and `Limit` (default 10, 1–250). Tencent documents 10–250; smaller
/// limits are accepted too, since they harm nothing.
fn page(p: &Params) -> Result<Page, ApiError> {
    let offset = p.opt_i64("Offset")?.unwrap_or(0);
    let limit = p.opt_i64("Limit")?.unwrap_or(DEFAULT_LIMIT);
    let offset = u64::try_from(offset)
        .map_err(|_| ApiError::invalid("Offset", format!("must be 0 or more, got {offset}")))?;
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "Limit",
            format!("must be between 1 and {MAX_LIMIT}, got {limit}"),
        ));
    }
    Ok(Page {
        offset,
        limit: limit.unsigned_abs(),
    })
}
