//! Firmware and update tasks (Tencent's OTA actions): GetCOSURL, UploadFirmware,
//! DescribeFirmware, ListFirmwares, EditFirmware, GetAllVersion, BatchUpdateFirmware,
//! DescribeFirmwareTask, DescribeFirmwareTasks, DescribeFirmwareTaskDevices,
//! DescribeFirmwareTaskDistribution, DescribeFirmwareTaskStatistics,
//! CancelDeviceFirmwareTask, RetryDeviceFirmwareTask. The files and the device protocol are
//! `eddy-services`' (`ota`).

use eddy_core::time::unix_now;
use eddy_core::{DeviceId, DeviceName, ProductId};
use eddy_services::Services;
use eddy_services::ota::{self, NewTask, OtaError};
use eddy_store::{FirmwareRecord, Page, ProductRecord, TaskDeviceFilter};
use serde_json::{Map, Value, json};

use super::object;
use super::shadow::services;
use crate::ApiState;
use crate::error::ApiError;
use crate::params::Params;

/// Default per-device timeout of a task (Tencent: 60–3600 s).
const DEFAULT_TIMEOUT_SECS: i64 = 3600;

fn ota_error(err: OtaError) -> ApiError {
    match err {
        OtaError::FirmwareNotFound { .. } => {
            ApiError::new("ResourceNotFound.FirmwareNotExist", err.to_string())
        }
        OtaError::FirmwareExists { .. } => ApiError::new(
            "InvalidParameterValue.FirmwareAlreadyExist",
            err.to_string(),
        ),
        OtaError::Invalid(why) => ApiError::new("InvalidParameterValue", why),
        OtaError::DeviceBusy(_) => {
            ApiError::new("FailedOperation.DeviceIsUpdating", err.to_string())
        }
        OtaError::TaskNotFound(_) => {
            ApiError::new("ResourceNotFound.FirmwareTaskNotExist", err.to_string())
        }
        OtaError::TaskDeviceNotFound { .. } => ApiError::new(
            "ResourceNotFound.DeviceFirmwareTaskNotExist",
            err.to_string(),
        ),
        // Tencent's spelling.
        OtaError::AlreadyEnded { .. } => ApiError::new(
            "FailedOperation.DeviceFirmwareTaskAlreadDone",
            err.to_string(),
        ),
        OtaError::StillRunning { .. } => {
            ApiError::new("FailedOperation.DeviceRunningOtherOtaTask", err.to_string())
        }
        OtaError::Io(_) | OtaError::Store(_) => {
            tracing::error!(error = %err, "OTA operation failed");
            ApiError::internal()
        }
    }
}

async fn product(state: &ApiState, p: &Params) -> Result<ProductRecord, ApiError> {
    Ok(state.registry.product(&p.str("ProductId")?).await?)
}

fn version(p: &Params, key: &str) -> Result<String, ApiError> {
    let version = p.str(key)?;
    ota::check_version(&version).map_err(|e| ApiError::invalid(key, e))?;
    Ok(version)
}

async fn firmware(
    state: &ApiState,
    product: &ProductId,
    version: &str,
) -> Result<FirmwareRecord, ApiError> {
    state
        .registry
        .store()
        .firmware(product, version)
        .await
        .map_err(|e| ota_error(e.into()))?
        .ok_or_else(|| {
            ota_error(OtaError::FirmwareNotFound {
                product: product.to_string(),
                version: version.to_owned(),
            })
        })
}

pub(super) async fn cos_url(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let product = product(state, p).await?;
    let version = version(p, "FirmwareVersion")?;
    let size = p.opt_i64("FileSize")?;
    p.finish()?;
    let services = services(state)?;
    if let Some(size) = size
        && u64::try_from(size).map_or(true, |s| s > services.max_firmware_bytes())
    {
        return Err(ApiError::new(
            "LimitExceeded.FirmwareExceedLimit",
            format!(
                "FileSize {size} is more than the {} bytes allowed.",
                services.max_firmware_bytes()
            ),
        ));
    }
    // A registered version cannot be replaced: say so before the client sends the file.
    if state
        .registry
        .store()
        .firmware(&product.id, &version)
        .await
        .map_err(|e| ota_error(e.into()))?
        .is_some()
    {
        return Err(ApiError::new(
            "InvalidParameterValue.FirmwareAlreadyExist",
            format!(
                "Firmware {version} of {} is registered already; it cannot be replaced.",
                product.id
            ),
        ));
    }
    let url = services
        .upload_url(&product.id, &version)
        .map_err(ota_error)?;
    Ok(object(json!({ "Url": url })))
}

pub(super) async fn upload(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let product = product(state, p).await?;
    let version = version(p, "FirmwareVersion")?;
    let md5 = p.str("Md5sum")?;
    let size = p.i64("FileSize")?;
    let name = p.opt_str("FirmwareName")?.unwrap_or_default();
    let description = p.opt_str("FirmwareDescription")?.unwrap_or_default();
    let user_defined = p.opt_str("FirmwareUserDefined")?.unwrap_or_default();
    p.finish()?;
    services(state)?
        .register_firmware(FirmwareRecord {
            product_id: product.id,
            version,
            name,
            description,
            user_defined,
            md5,
            size,
            created_at: unix_now(),
        })
        .await
        .map_err(ota_error)?;
    Ok(Map::new())
}

pub(super) async fn describe(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let product = product(state, p).await?;
    let version = version(p, "FirmwareVersion")?;
    p.finish()?;
    let f = firmware(state, &product.id, &version).await?;
    // Tencent spells it `Createtime` here and `CreateTime` in listings.
    Ok(object(json!({
        "Version": f.version,
        "ProductId": f.product_id.as_str(),
        "Name": f.name,
        "Description": f.description,
        "Md5sum": f.md5,
        "Createtime": f.created_at,
        "ProductName": product.name.as_str(),
        "FwType": "",
        "UserDefined": f.user_defined,
        "FileSize": f.size,
    })))
}

fn firmware_info(f: &FirmwareRecord, product_name: &str) -> Value {
    json!({
        "Version": f.version,
        "Md5sum": f.md5,
        "CreateTime": f.created_at,
        "ProductName": product_name,
        "Name": f.name,
        "Description": f.description,
        "ProductId": f.product_id.as_str(),
        "FwType": "",
        "CreateUserId": 0,
        "UserDefined": f.user_defined,
    })
}

pub(super) async fn list(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let page_num = p.i64("PageNum")?;
    let page_size = p.i64("PageSize")?;
    let product = match p.opt_str("ProductId")? {
        Some(id) => Some(state.registry.product(&id).await?),
        None => None,
    };
    if p.has("Filters") {
        return Err(ApiError::new(
            "InvalidParameterValue",
            "ListFirmwares Filters are not supported; list by ProductId.",
        ));
    }
    p.finish()?;
    if page_num < 1 || !(1..=super::MAX_LIMIT).contains(&page_size) {
        return Err(ApiError::invalid(
            "PageNum",
            format!(
                "PageNum must be 1 or more and PageSize 1–{}",
                super::MAX_LIMIT
            ),
        ));
    }
    let page = Page {
        offset: u64::try_from((page_num - 1) * page_size).unwrap_or(0),
        limit: page_size.unsigned_abs(),
    };
    let listed = state
        .registry
        .store()
        .list_firmwares(product.as_ref().map(|p| &p.id), page)
        .await
        .map_err(|e| ota_error(e.into()))?;
    let mut names = std::collections::HashMap::new();
    let mut firmwares = Vec::new();
    for f in &listed.items {
        if !names.contains_key(f.product_id.as_str()) {
            let name = state
                .registry
                .product(f.product_id.as_str())
                .await
                .map(|p| p.name.as_str().to_owned())
                .unwrap_or_default();
            names.insert(f.product_id.to_string(), name);
        }
        firmwares.push(firmware_info(f, &names[f.product_id.as_str()]));
    }
    Ok(object(
        json!({ "TotalCount": listed.total, "Firmwares": firmwares }),
    ))
}

pub(super) async fn edit(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let product = product(state, p).await?;
    let version = version(p, "FirmwareVersion")?;
    let name = p.str("FirmwareName")?;
    let description = p.opt_str("FirmwareDescription")?;
    let user_defined = p.opt_str("FirmwareUserDefined")?;
    p.finish()?;
    let mut f = firmware(state, &product.id, &version).await?;
    f.name = name;
    f.description = description.unwrap_or(f.description);
    f.user_defined = user_defined.unwrap_or(f.user_defined);
    state
        .registry
        .store()
        .edit_firmware(&f)
        .await
        .map_err(|e| ota_error(e.into()))?;
    Ok(Map::new())
}

pub(super) async fn all_versions(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product = product(state, p).await?;
    p.finish()?;
    let mut versions = Vec::new();
    let mut offset = 0;
    loop {
        let listed = state
            .registry
            .store()
            .list_firmwares(Some(&product.id), Page { offset, limit: 250 })
            .await
            .map_err(|e| ota_error(e.into()))?;
        if listed.items.is_empty() {
            break;
        }
        offset += listed.items.len() as u64;
        versions.extend(listed.items.into_iter().map(|f| f.version));
    }
    Ok(object(json!({ "Version": versions })))
}

pub(super) async fn batch_update(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product = product(state, p).await?;
    let version = version(p, "FirmwareVersion")?;
    let from_version = p.opt_str("FirmwareOriVersion")?;
    let names = if p.has("DeviceNames") {
        p.str_list("DeviceNames")?
    } else {
        Vec::new()
    };
    // Eddy's: every member of this device group in the product.
    let group = p.opt_str("GroupName")?;
    let method = p.opt_i64("UpgradeMethod")?.unwrap_or(0);
    let timeout = p
        .opt_i64("TimeoutInterval")?
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    let task_type = p.opt_i64("Type")?.unwrap_or(1);
    for unsupported in ["FileName", "FileMd5", "FileSize"] {
        if p.has(unsupported) {
            return Err(ApiError::new(
                "InvalidParameterValue",
                format!(
                    "{unsupported}: device-list files are not supported; give DeviceNames or FirmwareOriVersion."
                ),
            ));
        }
    }
    p.finish()?;
    if method != 0 {
        return Err(ApiError::invalid(
            "UpgradeMethod",
            "only 0 (silent upgrade) is supported",
        ));
    }
    if task_type != 1 {
        return Err(ApiError::invalid(
            "Type",
            "only 1 (static task) is supported",
        ));
    }
    if !(60..=3600).contains(&timeout) {
        return Err(ApiError::invalid(
            "TimeoutInterval",
            "must be 60–3600 seconds",
        ));
    }
    let mut devices = names
        .iter()
        .map(|n| DeviceName::parse(n).map_err(ApiError::from))
        .collect::<Result<Vec<_>, _>>()?;
    let choices = usize::from(!devices.is_empty())
        + usize::from(from_version.is_some())
        + usize::from(group.is_some());
    if choices != 1 {
        return Err(ApiError::new(
            "InvalidParameterValue",
            "Give one of DeviceNames, FirmwareOriVersion (the version the devices run now) or GroupName.",
        ));
    }
    if let Some(group) = &group {
        devices = state
            .registry
            .all_group_devices(group, product.id.as_str())
            .await?
            .into_iter()
            .map(|d| d.device_name)
            .collect();
        if devices.is_empty() {
            return Err(ApiError::new(
                "InvalidParameterValue",
                format!(
                    "Device group {group:?} has no device of product {}.",
                    product.id
                ),
            ));
        }
    }
    let task_id = services(state)?
        .create_task(NewTask {
            product: product.id,
            version,
            devices,
            from_version,
            group,
            timeout_secs: timeout,
        })
        .await
        .map_err(ota_error)?;
    Ok(object(json!({ "TaskId": task_id })))
}

async fn task(
    state: &ApiState,
    p: &Params,
) -> Result<
    (
        ProductRecord,
        eddy_store::FirmwareTaskRecord,
        Vec<(i64, i64)>,
    ),
    ApiError,
> {
    let product = product(state, p).await?;
    let version = version(p, "FirmwareVersion")?;
    let task_id = p.i64("TaskId")?;
    p.finish()?;
    let store = state.registry.store();
    let task = store
        .firmware_task(task_id)
        .await
        .map_err(|e| ota_error(e.into()))?
        .filter(|t| t.product_id == product.id && t.version == version)
        .ok_or_else(|| ota_error(OtaError::TaskNotFound(task_id)))?;
    let counts = store
        .task_status_counts(&product.id, &version, Some(task_id))
        .await
        .map_err(|e| ota_error(e.into()))?;
    Ok((product, task, counts))
}

pub(super) async fn describe_task(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let (product, task, counts) = task(state, p).await?;
    Ok(object(json!({
        "TaskId": task.task_id,
        "Status": ota::task_status(&counts),
        "CreateTime": task.created_at,
        "Type": task.task_type,
        "ProductName": product.name.as_str(),
        "UpgradeMode": task.upgrade_mode,
        "ProductId": product.id.as_str(),
        "OriginalVersion": task.original_version,
    })))
}

pub(super) async fn distribution(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let (_, _, counts) = task(state, p).await?;
    let infos: Vec<Value> = counts
        .iter()
        .map(|(status, total)| json!({"Status": status, "Total": total}))
        .collect();
    Ok(object(json!({ "StatusInfos": infos })))
}

pub(super) async fn list_tasks(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product = product(state, p).await?;
    let version = version(p, "FirmwareVersion")?;
    let page = super::page(p)?;
    if p.has("Filters") {
        return Err(ApiError::new(
            "InvalidParameterValue",
            "Filters are not supported here.",
        ));
    }
    p.finish()?;
    let store = state.registry.store();
    let listed = store
        .list_firmware_tasks(&product.id, &version, page)
        .await
        .map_err(|e| ota_error(e.into()))?;
    let mut infos = Vec::new();
    for t in &listed.items {
        let counts = store
            .task_status_counts(&product.id, &version, Some(t.task_id))
            .await
            .map_err(|e| ota_error(e.into()))?;
        infos.push(json!({
            "TaskId": t.task_id,
            "Status": ota::task_status(&counts),
            "Type": t.task_type,
            "CreateTime": t.created_at,
        }));
    }
    Ok(object(json!({ "TaskInfos": infos, "Total": listed.total })))
}

pub(super) async fn task_devices(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product = product(state, p).await?;
    let version = match p.opt_str("FirmwareVersion")? {
        Some(v) => {
            ota::check_version(&v).map_err(|e| ApiError::invalid("FirmwareVersion", e))?;
            Some(v)
        }
        None => None,
    };
    let page = super::page(p)?;
    // Tencent leaves the filter keys undocumented; Eddy's are TaskId and DeviceName.
    let mut filter = TaskDeviceFilter {
        version: version.clone(),
        ..TaskDeviceFilter::default()
    };
    if p.has("Filters") {
        for f in p.object_list("Filters")? {
            let key = f.str("Key")?;
            let value = f.opt_str("Value")?.unwrap_or_default();
            f.finish()?;
            match key.as_str() {
                "TaskId" => {
                    filter.task_id = Some(value.parse().map_err(|_| {
                        ApiError::invalid(
                            "Filters.Value",
                            format!("TaskId must be a number, got {value:?}"),
                        )
                    })?);
                }
                "DeviceName" => filter.device_name = Some(DeviceName::parse(&value)?),
                other => {
                    return Err(ApiError::invalid(
                        "Filters.Key",
                        format!("must be TaskId or DeviceName, got {other:?}"),
                    ));
                }
            }
        }
    }
    p.finish()?;
    let store = state.registry.store();
    let listed = store
        .task_devices(&product.id, &filter, page)
        .await
        .map_err(|e| ota_error(e.into()))?;
    let mut targets = std::collections::HashMap::new();
    let mut devices = Vec::new();
    for d in &listed.items {
        if let std::collections::hash_map::Entry::Vacant(slot) = targets.entry(d.task_id) {
            let target = store
                .firmware_task(d.task_id)
                .await
                .map_err(|e| ota_error(e.into()))?
                .map(|t| t.version)
                .unwrap_or_default();
            slot.insert(target);
        }
        devices.push(json!({
            "DeviceName": d.device_name.as_str(),
            "LastProcessTime": d.updated_at,
            "Status": d.status,
            "ErrMsg": d.message,
            "Retcode": d.retcode,
            "DstVersion": targets[&d.task_id],
            "Percent": d.percent,
            "OriVersion": d.ori_version,
            "TaskId": d.task_id,
        }));
    }
    Ok(object(json!({ "Total": listed.total, "Devices": devices })))
}

pub(super) async fn statistics(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product = product(state, p).await?;
    let version = version(p, "FirmwareVersion")?;
    p.finish()?;
    let counts = state
        .registry
        .store()
        .task_status_counts(&product.id, &version, None)
        .await
        .map_err(|e| ota_error(e.into()))?;
    let sum = |statuses: &[i64]| -> i64 {
        counts
            .iter()
            .filter(|(s, _)| statuses.contains(s))
            .map(|(_, n)| n)
            .sum()
    };
    Ok(object(json!({
        "SuccessTotal": sum(&[ota::DONE]),
        "FailureTotal": sum(&[ota::FAILED, ota::TIMED_OUT]),
        "UpgradingTotal": sum(ota::ACTIVE),
    })))
}

async fn device_task<'a>(
    state: &'a ApiState,
    p: &Params,
) -> Result<(&'a Services, i64, DeviceId), ApiError> {
    let product = product(state, p).await?;
    let name = p.str("DeviceName")?;
    let _version = version(p, "FirmwareVersion")?;
    let task_id = p.i64("TaskId")?;
    p.finish()?;
    let device = state.registry.device(product.id.as_str(), &name).await?;
    Ok((
        services(state)?,
        task_id,
        DeviceId::new(device.product_id, device.name),
    ))
}

pub(super) async fn cancel_device(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let (services, task_id, device) = device_task(state, p).await?;
    services
        .cancel_task_device(task_id, &device)
        .await
        .map_err(ota_error)?;
    Ok(Map::new())
}

pub(super) async fn retry_device(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let (services, task_id, device) = device_task(state, p).await?;
    services
        .retry_task_device(task_id, &device)
        .await
        .map_err(ota_error)?;
    Ok(Map::new())
}
