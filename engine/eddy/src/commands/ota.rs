//! `eddy firmware …` and `eddy ota …`: Tencent's firmware and update-task actions, plus the
//! firmware upload itself (an HTTP PUT to the URL GetCOSURL gives) with a progress bar.

use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use md5::Digest as _;
use serde_json::{Value, json};

use super::manage::client;
use super::output::{cell, json as pretty, table};
use crate::cli::{FirmwareCommand, OtaCommand};
use crate::client::ApiClient;
use crate::config::Config;

/// How often `eddy ota status --watch` asks again.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Per-device statuses that have not ended.
const ACTIVE: [i64; 4] = [1, 2, 3, 4];

pub async fn firmware(config: &Config, command: FirmwareCommand) -> anyhow::Result<String> {
    match command {
        FirmwareCommand::Upload {
            product_id,
            firmware_version: version,
            file,
            name,
            description,
            api,
        } => {
            let client = client(config, &api)?;
            let size = tokio::fs::metadata(&file)
                .await
                .with_context(|| format!("reading {}", file.display()))?
                .len();
            let md5 = file_md5(&file).await?;
            let url = client
                .call(
                    "GetCOSURL",
                    &json!({"ProductId": product_id, "FirmwareVersion": version, "FileSize": size}),
                )
                .await?["Url"]
                .as_str()
                .context("GetCOSURL gave no Url")?
                .to_owned();
            put_with_progress(&url, &file, size).await?;
            let out = client
                .call(
                    "UploadFirmware",
                    &json!({
                        "ProductId": product_id, "FirmwareVersion": version, "Md5sum": md5,
                        "FileSize": size, "FirmwareName": name,
                        "FirmwareDescription": description,
                    }),
                )
                .await?;
            if api.json {
                return Ok(pretty(&out));
            }
            Ok(format!(
                "firmware {version} of {product_id} uploaded: {size} bytes, md5 {md5}"
            ))
        }
        FirmwareCommand::List { product_id, api } => {
            let mut params = json!({"PageNum": 1, "PageSize": 250});
            if let Some(product_id) = product_id {
                params["ProductId"] = Value::String(product_id);
            }
            let out = client(config, &api)?.call("ListFirmwares", &params).await?;
            if api.json {
                return Ok(pretty(&out));
            }
            let rows = out["Firmwares"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|f| {
                    ["ProductId", "Version", "Name", "Md5sum", "CreateTime"]
                        .iter()
                        .map(|k| cell(f.get(*k)))
                        .collect()
                })
                .collect();
            Ok(table(
                &["product", "version", "name", "md5", "created"],
                rows,
            ))
        }
    }
}

async fn file_md5(path: &std::path::Path) -> anyhow::Result<String> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let mut stream = tokio_util::io::ReaderStream::new(file);
    let mut hasher = md5::Md5::new();
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk.with_context(|| format!("reading {}", path.display()))?);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// PUTs the file to `url`, showing a progress bar on a terminal.
async fn put_with_progress(url: &str, path: &std::path::Path, size: u64) -> anyhow::Result<()> {
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message("uploading");
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let counted = bar.clone();
    let stream = tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            counted.inc(chunk.len() as u64);
        }
    });
    let response = reqwest::Client::new()
        .put(url)
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .context("uploading the firmware file")?;
    bar.finish_and_clear();
    let status = response.status();
    if !status.is_success() {
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["Response"]["Error"]["Message"]
            .as_str()
            .unwrap_or("no reason given");
        anyhow::bail!("the hub refused the upload ({status}): {message}");
    }
    Ok(())
}

pub async fn run(config: &Config, command: OtaCommand) -> anyhow::Result<String> {
    match command {
        OtaCommand::Start {
            product_id,
            firmware_version: version,
            devices,
            from_version,
            group,
            timeout,
            api,
        } => {
            let mut params = json!({
                "ProductId": product_id, "FirmwareVersion": version, "TimeoutInterval": timeout,
            });
            match (from_version, group) {
                (Some(from), _) => params["FirmwareOriVersion"] = Value::String(from),
                (None, Some(group)) => params["GroupName"] = Value::String(group),
                (None, None) => params["DeviceNames"] = json!(devices),
            }
            let out = client(config, &api)?
                .call("BatchUpdateFirmware", &params)
                .await?;
            if api.json {
                return Ok(pretty(&out));
            }
            Ok(format!(
                "update task {} started; watch it with: eddy ota status {product_id} {version} {} --watch",
                cell(out.get("TaskId")),
                cell(out.get("TaskId"))
            ))
        }
        OtaCommand::Status {
            product_id,
            firmware_version: version,
            task_id,
            watch,
            api,
        } => {
            let client = client(config, &api)?;
            let mut devices = task_devices(&client, &product_id, &version, task_id).await?;
            if watch {
                devices = watch_task(&client, &product_id, &version, task_id, devices).await?;
            }
            if api.json {
                return Ok(pretty(&json!({ "Devices": devices })));
            }
            let rows = devices
                .iter()
                .map(|d| {
                    vec![
                        cell(d.get("DeviceName")),
                        status_name(d["Status"].as_i64().unwrap_or(0)).to_owned(),
                        cell(d.get("Percent")),
                        cell(d.get("OriVersion")),
                        cell(d.get("Retcode")),
                        cell(d.get("ErrMsg")),
                    ]
                })
                .collect();
            let (done, failed, active) = totals(&devices);
            Ok(format!(
                "{}\n{} devices: {done} updated, {failed} failed or cancelled, {active} updating",
                table(
                    &["device", "status", "percent", "from", "code", "message"],
                    rows
                ),
                devices.len()
            ))
        }
        OtaCommand::Cancel {
            product_id,
            firmware_version: version,
            task_id,
            device_name,
            api,
        } => {
            device_action(
                config,
                "CancelDeviceFirmwareTask",
                &product_id,
                &version,
                task_id,
                &device_name,
                &api,
            )
            .await?;
            Ok(format!(
                "the update of {device_name} in task {task_id} is cancelled"
            ))
        }
        OtaCommand::Retry {
            product_id,
            firmware_version: version,
            task_id,
            device_name,
            api,
        } => {
            device_action(
                config,
                "RetryDeviceFirmwareTask",
                &product_id,
                &version,
                task_id,
                &device_name,
                &api,
            )
            .await?;
            Ok(format!(
                "the update of {device_name} in task {task_id} starts again"
            ))
        }
    }
}

async fn device_action(
    config: &Config,
    action: &str,
    product_id: &str,
    version: &str,
    task_id: i64,
    device_name: &str,
    api: &crate::cli::ApiArgs,
) -> anyhow::Result<()> {
    client(config, api)?
        .call(
            action,
            &json!({"ProductId": product_id, "FirmwareVersion": version, "TaskId": task_id,
                    "DeviceName": device_name}),
        )
        .await?;
    Ok(())
}

/// Every device of the task (all pages).
async fn task_devices(
    client: &ApiClient,
    product_id: &str,
    version: &str,
    task_id: i64,
) -> anyhow::Result<Vec<Value>> {
    let mut devices = Vec::new();
    loop {
        let out = client
            .call(
                "DescribeFirmwareTaskDevices",
                &json!({
                    "ProductId": product_id, "FirmwareVersion": version,
                    "Filters": [{"Key": "TaskId", "Value": task_id.to_string()}],
                    "Offset": devices.len(), "Limit": 250,
                }),
            )
            .await?;
        let page = out["Devices"].as_array().cloned().unwrap_or_default();
        let total = usize::try_from(out["Total"].as_u64().unwrap_or(0)).unwrap_or(usize::MAX);
        if page.is_empty() {
            break;
        }
        devices.extend(page);
        if devices.len() >= total {
            break;
        }
    }
    Ok(devices)
}

/// (updated, failed or cancelled or timed out, still updating)
fn totals(devices: &[Value]) -> (usize, usize, usize) {
    let status = |d: &Value| d["Status"].as_i64().unwrap_or(0);
    let done = devices.iter().filter(|d| status(d) == 6).count();
    let active = devices
        .iter()
        .filter(|d| ACTIVE.contains(&status(d)))
        .count();
    (done, devices.len() - done - active, active)
}

/// Redraws an overall bar (and the downloading devices' mean percent) until no device
/// of the task is still updating; returns the final device list.
async fn watch_task(
    client: &ApiClient,
    product_id: &str,
    version: &str,
    task_id: i64,
    mut devices: Vec<Value>,
) -> anyhow::Result<Vec<Value>> {
    let bar = ProgressBar::new(devices.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("task {prefix} [{bar:40}] {pos}/{len} ended  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(task_id.to_string());
    loop {
        let (done, failed, active) = totals(&devices);
        let downloading: Vec<i64> = devices
            .iter()
            .filter(|d| d["Status"].as_i64() == Some(3))
            .map(|d| d["Percent"].as_i64().unwrap_or(0))
            .collect();
        let mean = if downloading.is_empty() {
            0
        } else {
            downloading.iter().sum::<i64>() / i64::try_from(downloading.len()).unwrap_or(1)
        };
        bar.set_length(devices.len() as u64);
        bar.set_position((done + failed) as u64);
        bar.set_message(format!(
            "{done} updated, {failed} failed, {active} updating ({} downloading, mean {mean}%)",
            downloading.len()
        ));
        if active == 0 {
            bar.finish_and_clear();
            return Ok(devices);
        }
        tokio::time::sleep(WATCH_EVERY).await;
        devices = task_devices(client, product_id, version, task_id).await?;
    }
}

fn status_name(status: i64) -> &'static str {
    match status {
        1 => "pending",
        2 => "delivered",
        3 => "downloading",
        4 => "burning",
        5 => "failed",
        6 => "updated",
        9 => "cancelled",
        10 => "timed out",
        _ => "unknown",
    }
}
