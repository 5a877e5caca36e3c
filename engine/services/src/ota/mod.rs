//! OTA (Tencent §5): firmware versions, update tasks, and the device side on
//! `$ota/report/${pid}/${dn}` (device → hub) and `$ota/update/${pid}/${dn}` (hub → device).
//!
//! - `{"type":"report_version","report":{"version":…}}` records the device's version,
//!   answers `{"result_code":0,"result_msg":"success","type":"report_version_rsp",
//!   "version":…}`, and — when the device is in an update task it has not finished —
//!   pushes the update again (or marks it done if it already runs the target version).
//!   That is how an offline device gets its update: on its next `report_version`.
//! - `{"type":"report_progress","report":{"progress":{"state":…,"percent":"31",
//!   "result_code":"0","result_msg":""},"version":…}}` moves the device's task entry:
//!   downloading → 3 (with the percent), burning → 4, done → 6, fail → 5 (with the code).
//! - Pushes are `{"file_size":N,"md5sum":…,"type":"update_firmware","url":…,"version":…}`
//!   with a signed URL on the hub's own HTTP listener (Range requests resume downloads).
//!
//! Per-device status numbers are Tencent's: 1 pending, 2 delivered, 3 downloading,
//! 4 burning, 5 failed, 6 done, 10 timed out (no progress for the task's
//! `TimeoutInterval` since delivery or the last report; checked every few seconds);
//! 9 (cancelled) is Eddy's.

mod files;

use std::path::PathBuf;
use std::time::Duration;

use eddy_core::time::unix_now;
use eddy_core::{DeviceId, DeviceName, Message, ProductId};
use eddy_store::{
    DeviceFilter, FirmwareRecord, FirmwareTaskRecord, Page, StoreError, TaskDeviceRecord,
};
use serde_json::{Value, json};

pub use files::{FirmwareFiles, UrlPurpose, check_version};

use crate::{Services, Shared};

pub const PENDING: i64 = 1;
pub const DELIVERED: i64 = 2;
pub const DOWNLOADING: i64 = 3;
pub const BURNING: i64 = 4;
pub const FAILED: i64 = 5;
pub const DONE: i64 = 6;
pub const CANCELLED: i64 = 9;
pub const TIMED_OUT: i64 = 10;
/// Entries that have not ended for their device.
pub const ACTIVE: &[i64] = &[PENDING, DELIVERED, DOWNLOADING, BURNING];

/// How OTA runs.
#[derive(Debug, Clone)]
pub struct OtaSettings {
    /// Where firmware files live (`<data-dir>/firmware`).
    pub dir: PathBuf,
    /// The base of the URLs devices download from and uploads go to, e.g.
    /// `http://hub.example:8080` (the API listener as devices reach it).
    pub public_url: String,
    /// Most devices one task may hold (Tencent: 10,000).
    pub max_task_devices: usize,
    /// How long a download URL stays valid (Tencent: 24 h).
    pub download_ttl: Duration,
    /// How long an upload URL stays valid.
    pub upload_ttl: Duration,
    /// Largest firmware file (Tencent: 1024 MB).
    pub max_firmware_bytes: u64,
}

/// Why an OTA operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum OtaError {
    #[error("firmware {version} of product {product} does not exist")]
    FirmwareNotFound { product: String, version: String },
    #[error("firmware {version} of product {product} already exists")]
    FirmwareExists { product: String, version: String },
    #[error("{0}")]
    Invalid(String),
    #[error("device {0} is already in an update task that has not ended for it")]
    DeviceBusy(String),
    #[error("update task {0} does not exist")]
    TaskNotFound(i64),
    #[error("device {device} is not in update task {task}")]
    TaskDeviceNotFound { device: String, task: i64 },
    #[error("the update of device {device} in task {task} has already ended")]
    AlreadyEnded { device: String, task: i64 },
    #[error("the update of device {device} in task {task} is still running")]
    StillRunning { device: String, task: i64 },
    #[error("the firmware file could not be read: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new update task (Tencent's `BatchUpdateFirmware`).
#[derive(Debug, Clone)]
pub struct NewTask {
    pub product: ProductId,
    pub version: String,
    /// Devices by name…
    pub devices: Vec<DeviceName>,
    /// …or every device of the product now running this version.
    pub from_version: Option<String>,
    /// The device group `devices` came from, if any (the task's upgrade mode says so).
    pub group: Option<String>,
    pub timeout_secs: i64,
}

impl Services {
    /// The firmware files, when OTA is configured.
    pub fn firmware_files(&self) -> Option<&FirmwareFiles> {
        self.shared.ota.as_ref().map(|(files, _)| files)
    }

    fn ota(&self) -> Result<&(FirmwareFiles, OtaSettings), OtaError> {
        self.shared
            .ota
            .as_ref()
            .ok_or_else(|| OtaError::Invalid("this hub has no firmware storage configured".into()))
    }

    /// The URL to `PUT` a firmware file to (Tencent's `GetCOSURL`).
    pub fn upload_url(&self, product: &ProductId, version: &str) -> Result<String, OtaError> {
        check_version(version).map_err(|e| OtaError::Invalid(format!("FirmwareVersion {e}")))?;
        let (files, settings) = self.ota()?;
        let expires = unix_now() + i64::try_from(settings.upload_ttl.as_secs()).unwrap_or(3600);
        Ok(files.url(
            &settings.public_url,
            UrlPurpose::Upload,
            product,
            version,
            expires,
        ))
    }

    /// Largest upload accepted.
    pub fn max_firmware_bytes(&self) -> u64 {
        self.shared
            .ota
            .as_ref()
            .map_or(0, |(_, settings)| settings.max_firmware_bytes)
    }

    /// Registers an uploaded file as a firmware version (Tencent's `UploadFirmware`): its
    /// MD5 and size must be the ones given.
    pub async fn register_firmware(&self, firmware: FirmwareRecord) -> Result<(), OtaError> {
        check_version(&firmware.version)
            .map_err(|e| OtaError::Invalid(format!("FirmwareVersion {e}")))?;
        let (files, _) = self.ota()?;
        let path = files.path(&firmware.product_id, &firmware.version);
        if self
            .shared
            .store
            .firmware(&firmware.product_id, &firmware.version)
            .await?
            .is_some()
        {
            return Err(OtaError::FirmwareExists {
                product: firmware.product_id.to_string(),
                version: firmware.version,
            });
        }
        let (md5, size) = match file_md5(path).await {
            Ok(found) => found,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(OtaError::Invalid(format!(
                    "no file was uploaded for firmware {}; PUT it to the URL GetCOSURL gives first",
                    firmware.version
                )));
            }
            Err(err) => return Err(err.into()),
        };
        if !md5.eq_ignore_ascii_case(&firmware.md5)
            || i64::try_from(size).ok() != Some(firmware.size)
        {
            return Err(OtaError::Invalid(format!(
                "the uploaded file has MD5 {md5} and {size} bytes, not Md5sum {} and FileSize {}",
                firmware.md5, firmware.size
            )));
        }
        let firmware = FirmwareRecord { md5, ..firmware };
        match self.shared.store.insert_firmware(&firmware).await {
            Err(StoreError::Conflict { .. }) => Err(OtaError::FirmwareExists {
                product: firmware.product_id.to_string(),
                version: firmware.version,
            }),
            other => Ok(other?),
        }
    }

    /// Creates an update task and pushes the update to the task's connected devices (in
    /// the background); returns the task id.
    pub async fn create_task(&self, new: NewTask) -> Result<i64, OtaError> {
        let store = &self.shared.store;
        let (_, settings) = self.ota()?;
        let firmware = store
            .firmware(&new.product, &new.version)
            .await?
            .ok_or_else(|| OtaError::FirmwareNotFound {
                product: new.product.to_string(),
                version: new.version.clone(),
            })?;
        let mut devices = Vec::new();
        let now = unix_now();
        let entry = |name: DeviceName, ori: String| TaskDeviceRecord {
            task_id: 0,
            product_id: new.product.clone(),
            device_name: name,
            status: PENDING,
            percent: 0,
            retcode: 0,
            message: String::new(),
            ori_version: ori,
            updated_at: now,
        };
        let (mode, original) = match &new.from_version {
            Some(from) => {
                let filter = DeviceFilter {
                    firmware_version: Some(from.clone()),
                    ..DeviceFilter::default()
                };
                let mut offset = 0;
                loop {
                    let page = store
                        .list_devices(&new.product, &filter, Page { offset, limit: 250 })
                        .await?;
                    if page.items.is_empty() {
                        break;
                    }
                    offset += page.items.len() as u64;
                    for d in page.items {
                        devices.push(entry(d.name, d.firmware_version));
                    }
                    if devices.len() > settings.max_task_devices {
                        break;
                    }
                }
                ("originalVersion", from.clone())
            }
            None => {
                let mut seen = std::collections::HashSet::new();
                for name in &new.devices {
                    if !seen.insert(name.clone()) {
                        continue;
                    }
                    let device = store.device(&new.product, name).await?.ok_or_else(|| {
                        OtaError::Invalid(format!("device {}/{name} does not exist", new.product))
                    })?;
                    devices.push(entry(device.name, device.firmware_version));
                }
                let mode = if new.group.is_some() {
                    "group"
                } else {
                    "devicenames"
                };
                (mode, String::new())
            }
        };
        if devices.is_empty() {
            return Err(OtaError::Invalid("the task would hold no device".into()));
        }
        if devices.len() > settings.max_task_devices {
            return Err(OtaError::Invalid(format!(
                "a task holds at most {} devices",
                settings.max_task_devices
            )));
        }
        let task = FirmwareTaskRecord {
            task_id: 0,
            product_id: new.product.clone(),
            version: new.version.clone(),
            original_version: original,
            upgrade_mode: mode.to_owned(),
            task_type: 1,
            timeout_secs: new.timeout_secs,
            created_at: now,
        };
        let task_id = match store.create_firmware_task(&task, &devices).await {
            Err(StoreError::Conflict { .. }) => {
                return Err(OtaError::DeviceBusy(format!("of product {}", new.product)));
            }
            other => other?,
        };
        tracing::info!(task_id, product = %new.product, version = %new.version, devices = devices.len(), "update task created");
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut delivered = 0usize;
            for mut d in devices {
                d.task_id = task_id;
                if push_update(&shared, &d, &firmware).await {
                    delivered += 1;
                }
            }
            tracing::info!(
                task_id,
                delivered,
                "update task pushed to the connected devices"
            );
        });
        Ok(task_id)
    }

    /// Cancels one device's update (Tencent's `CancelDeviceFirmwareTask`).
    pub async fn cancel_task_device(
        &self,
        task_id: i64,
        device: &DeviceId,
    ) -> Result<(), OtaError> {
        let mut entry = self.task_entry(task_id, device).await?;
        if !ACTIVE.contains(&entry.status) {
            return Err(OtaError::AlreadyEnded {
                device: device.to_string(),
                task: task_id,
            });
        }
        entry.status = CANCELLED;
        entry.updated_at = unix_now();
        if !self.shared.store.update_task_device(&entry, ACTIVE).await? {
            return Err(OtaError::AlreadyEnded {
                device: device.to_string(),
                task: task_id,
            });
        }
        Ok(())
    }

    /// Starts one device's update again after it failed, timed out or was cancelled
    /// (Tencent's `RetryDeviceFirmwareTask`).
    pub async fn retry_task_device(&self, task_id: i64, device: &DeviceId) -> Result<(), OtaError> {
        let store = &self.shared.store;
        let mut entry = self.task_entry(task_id, device).await?;
        match entry.status {
            DONE => {
                return Err(OtaError::AlreadyEnded {
                    device: device.to_string(),
                    task: task_id,
                });
            }
            s if ACTIVE.contains(&s) => {
                return Err(OtaError::StillRunning {
                    device: device.to_string(),
                    task: task_id,
                });
            }
            _ => {}
        }
        if store
            .active_task_device(&device.product_id, &device.device_name)
            .await?
            .is_some()
        {
            return Err(OtaError::DeviceBusy(device.to_string()));
        }
        let task = store
            .firmware_task(task_id)
            .await?
            .ok_or(OtaError::TaskNotFound(task_id))?;
        let firmware = store
            .firmware(&task.product_id, &task.version)
            .await?
            .ok_or_else(|| OtaError::FirmwareNotFound {
                product: task.product_id.to_string(),
                version: task.version.clone(),
            })?;
        entry.status = PENDING;
        entry.percent = 0;
        entry.retcode = 0;
        entry.message.clear();
        entry.updated_at = unix_now();
        if !store
            .update_task_device(&entry, &[FAILED, CANCELLED, TIMED_OUT])
            .await?
        {
            return Err(OtaError::StillRunning {
                device: device.to_string(),
                task: task_id,
            });
        }
        push_update(&self.shared, &entry, &firmware).await;
        Ok(())
    }

    async fn task_entry(
        &self,
        task_id: i64,
        device: &DeviceId,
    ) -> Result<TaskDeviceRecord, OtaError> {
        let filter = eddy_store::TaskDeviceFilter {
            task_id: Some(task_id),
            device_name: Some(device.device_name.clone()),
            version: None,
        };
        let page = self
            .shared
            .store
            .task_devices(
                &device.product_id,
                &filter,
                Page {
                    offset: 0,
                    limit: 1,
                },
            )
            .await?;
        page.items
            .into_iter()
            .next()
            .ok_or_else(|| OtaError::TaskDeviceNotFound {
                device: device.to_string(),
                task: task_id,
            })
    }
}

/// How often delivered updates are checked against their task's timeout.
const TIMEOUT_SWEEP: Duration = Duration::from_secs(5);

/// Marks timed out (10) the updates that took longer than their task allows since they
/// were delivered or last reported progress. Runs for the hub's life.
pub(crate) async fn sweep_timeouts(shared: std::sync::Weak<Shared>) {
    let mut every = tokio::time::interval(TIMEOUT_SWEEP);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match shared.store.time_out_task_devices(unix_now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(devices = n, "firmware updates timed out"),
            Err(err) => tracing::warn!(error = %err, "checking firmware update timeouts failed"),
        }
    }
}

/// MD5 (lower-case hex) and size of a file, read on the blocking pool.
async fn file_md5(path: PathBuf) -> std::io::Result<(String, u64)> {
    tokio::task::spawn_blocking(move || {
        use md5::Digest as _;
        use std::io::Read as _;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = md5::Md5::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        Ok((hex::encode(hasher.finalize()), size))
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// Sends `update_firmware` to the entry's device if it is connected, and marks the entry
/// delivered; false if the device was not there to take it.
async fn push_update(shared: &Shared, entry: &TaskDeviceRecord, firmware: &FirmwareRecord) -> bool {
    let Some((files, settings)) = shared.ota.as_ref() else {
        return false;
    };
    let device = DeviceId::new(entry.product_id.clone(), entry.device_name.clone());
    let expires = unix_now() + i64::try_from(settings.download_ttl.as_secs()).unwrap_or(86_400);
    let url = files.url(
        &settings.public_url,
        UrlPurpose::Download,
        &firmware.product_id,
        &firmware.version,
        expires,
    );
    let push = json!({
        "file_size": firmware.size,
        "md5sum": firmware.md5,
        "type": "update_firmware",
        "url": url,
        "version": firmware.version,
    });
    if !shared
        .send_to_device(&device, update_topic(&device), push)
        .await
    {
        return false;
    }
    let delivered = TaskDeviceRecord {
        status: DELIVERED,
        updated_at: unix_now(),
        ..entry.clone()
    };
    if let Err(err) = shared
        .store
        .update_task_device(&delivered, &[PENDING])
        .await
    {
        tracing::warn!(%device, error = %err, "recording an update delivery failed");
    }
    true
}

fn update_topic(device: &DeviceId) -> String {
    format!("$ota/update/{}/{}", device.product_id, device.device_name)
}

/// A number the SDKs send as a JSON string ("31") or a number.
fn loose_i64(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Answers one device message on `$ota/report/…`.
pub(crate) async fn answer(shared: &Shared, device: &DeviceId, message: &Message) {
    let request: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
    let version = request["report"]["version"].as_str().map(str::to_owned);
    let outcome = match (request["type"].as_str(), version) {
        (Some("report_version"), Some(version)) => report_version(shared, device, &version).await,
        (Some("report_progress"), Some(version)) => {
            report_progress(shared, device, &version, &request["report"]["progress"]).await
        }
        _ => {
            tracing::debug!(%device, "unknown $ota report ignored");
            Ok(())
        }
    };
    if let Err(err) = outcome {
        tracing::warn!(%device, error = %err, "handling an OTA report failed");
    }
}

async fn report_version(
    shared: &Shared,
    device: &DeviceId,
    version: &str,
) -> Result<(), StoreError> {
    let store = &shared.store;
    store
        .set_device_firmware_version(&device.product_id, &device.device_name, version, unix_now())
        .await?;
    let reply = json!({
        "result_code": 0,
        "result_msg": "success",
        "type": "report_version_rsp",
        "version": version,
    });
    shared.reply(update_topic(device), reply).await;
    let Some(entry) = store
        .active_task_device(&device.product_id, &device.device_name)
        .await?
    else {
        return Ok(());
    };
    let Some(task) = store.firmware_task(entry.task_id).await? else {
        return Ok(());
    };
    if task.version == version {
        let done = TaskDeviceRecord {
            status: DONE,
            percent: 100,
            updated_at: unix_now(),
            ..entry
        };
        store.update_task_device(&done, ACTIVE).await?;
        return Ok(());
    }
    // Not there yet (offline when the task began, or restarted mid-update): push again.
    if let Some(firmware) = store.firmware(&task.product_id, &task.version).await? {
        let pending = TaskDeviceRecord {
            status: PENDING,
            updated_at: unix_now(),
            ..entry
        };
        if store.update_task_device(&pending, ACTIVE).await? {
            push_update(shared, &pending, &firmware).await;
        }
    }
    Ok(())
}

async fn report_progress(
    shared: &Shared,
    device: &DeviceId,
    version: &str,
    progress: &Value,
) -> Result<(), StoreError> {
    let store = &shared.store;
    let Some(entry) = store
        .active_task_device(&device.product_id, &device.device_name)
        .await?
    else {
        return Ok(());
    };
    let Some(task) = store.firmware_task(entry.task_id).await? else {
        return Ok(());
    };
    if task.version != version {
        tracing::debug!(%device, version, "progress for a version no task asks for ignored");
        return Ok(());
    }
    let code = loose_i64(progress.get("result_code")).unwrap_or(0);
    let message = progress["result_msg"].as_str().unwrap_or("").to_owned();
    let (status, percent) = match progress["state"].as_str() {
        Some("downloading") => (
            DOWNLOADING,
            loose_i64(progress.get("percent"))
                .unwrap_or(entry.percent)
                .clamp(0, 100),
        ),
        Some("burning") => (BURNING, 100),
        Some("done") => (DONE, 100),
        Some("fail") => (FAILED, entry.percent),
        other => {
            tracing::debug!(%device, state = ?other, "unknown OTA progress state ignored");
            return Ok(());
        }
    };
    let next = TaskDeviceRecord {
        status,
        percent,
        retcode: if status == FAILED { code } else { 0 },
        message: if status == FAILED {
            message
        } else {
            String::new()
        },
        updated_at: unix_now(),
        ..entry
    };
    store.update_task_device(&next, ACTIVE).await?;
    if status == DONE {
        store
            .set_device_firmware_version(
                &device.product_id,
                &device.device_name,
                version,
                unix_now(),
            )
            .await?;
    }
    Ok(())
}

/// The task's status as Tencent reports it: 6 when every device was cancelled, 3 once no
/// device is still updating, 1 while some are (Tencent documents no numbers; its
/// examples show 3 for finished tasks and use 6 to cancel).
pub fn task_status(counts: &[(i64, i64)]) -> i64 {
    let active: i64 = counts
        .iter()
        .filter(|(s, _)| ACTIVE.contains(s))
        .map(|(_, n)| n)
        .sum();
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let cancelled: i64 = counts
        .iter()
        .filter(|(s, _)| *s == CANCELLED)
        .map(|(_, n)| n)
        .sum();
    if total > 0 && cancelled == total {
        6
    } else if active > 0 {
        1
    } else {
        3
    }
}
