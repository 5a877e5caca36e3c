//! OTA end to end (Tencent §5): a firmware file uploaded the way Tencent's flow goes
//! (GetCOSURL → PUT → UploadFirmware with its MD5), an update task pushed to an online
//! device and, on its next `report_version`, to one that was offline; the download
//! resumed with a Range request (the C SDK's off-by-one end included) and its MD5
//! checked; progress reports in the SDKs' exact JSON (percent and result_code as strings);
//! per-device status and statistics through the API; everything again after kill -9; and
//! a task over 1,000 simulated devices whose statistics come out exact.

use std::collections::BTreeMap;
use std::time::Duration;

use md5::Digest as _;
use rumqttc::{Event, Packet, QoS};
use serde_json::{Value, json};

use crate::device::TestDevice;
use crate::support::{self, Hub, error_code};
use crate::{NO_CONNECT_INTERVAL, STEP, fresh};

/// Deterministic bytes that do not compress or repeat.
fn firmware_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(md5::Md5::digest(bytes))
}

/// GetCOSURL, PUT, UploadFirmware.
pub async fn upload(api: &eddy::client::ApiClient, pid: &str, version: &str, bytes: &[u8]) {
    let url = api
        .call(
            "GetCOSURL",
            &json!({"ProductId": pid, "FirmwareVersion": version, "FileSize": bytes.len()}),
        )
        .await
        .unwrap()["Url"]
        .as_str()
        .unwrap()
        .to_owned();
    let put: Value = reqwest::Client::new()
        .put(&url)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(put["Md5sum"], md5_hex(bytes));
    assert_eq!(put["FileSize"], bytes.len());
    api.call(
        "UploadFirmware",
        &json!({"ProductId": pid, "FirmwareVersion": version, "Md5sum": md5_hex(bytes),
                "FileSize": bytes.len(), "FirmwareName": format!("fw {version}")}),
    )
    .await
    .unwrap();
}

/// The C SDK's report strings, byte for byte.
fn report_version(version: &str) -> Vec<u8> {
    format!(r#"{{"type": "report_version", "report":{{"version":"{version}"}}}}"#).into_bytes()
}

fn report_progress(state: &str, percent: u32, version: &str) -> Vec<u8> {
    match state {
        "downloading" => format!(
            r#"{{"type": "report_progress", "report": {{"progress": {{"state":"downloading", "percent":"{percent}", "result_code":"0", "result_msg":""}}, "version": "{version}"}}}}"#
        ),
        "fail" => format!(
            r#"{{"type": "report_progress", "report": {{"progress": {{"state":"fail", "result_code":"-4", "result_msg":"time_out"}}, "version": "{version}"}}}}"#
        ),
        other => format!(
            r#"{{"type": "report_progress", "report":{{"progress":{{"state":"{other}", "result_code":"0", "result_msg":""}}, "version":"{version}"}}}}"#
        ),
    }
    .into_bytes()
}

async fn task_device(api: &eddy::client::ApiClient, pid: &str, task: i64, dn: &str) -> Value {
    let out = api
        .call(
            "DescribeFirmwareTaskDevices",
            &json!({"ProductId": pid, "FirmwareVersion": "2.0.0",
                    "Filters": [{"Key": "TaskId", "Value": task.to_string()},
                                {"Key": "DeviceName", "Value": dn}]}),
        )
        .await
        .unwrap();
    assert_eq!(out["Total"], 1, "{out}");
    out["Devices"][0].clone()
}

async fn get(url: &str, range: Option<&str>) -> (u16, Vec<u8>, Option<String>) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(range) = range {
        req = req.header("Range", range);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_range = resp
        .headers()
        .get("content-range")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, resp.bytes().await.unwrap().to_vec(), content_range)
}

#[tokio::test]
async fn firmware_update_end_to_end_and_across_kill_9() {
    let dir = support::workdir();
    let hub = Hub::start_with(dir.path(), "", NO_CONNECT_INTERVAL);
    let api = hub.client();
    let pid = support::create_product(&api, "routers", "2").await;
    let psk_of = |v: Value| v["DevicePsk"].as_str().unwrap().to_owned();
    let psk_a = psk_of(support::create_device(&api, &pid, "a").await);
    let psk_b = psk_of(support::create_device(&api, &pid, "b").await);

    // A 3 MB firmware; the registration checks the MD5 the uploader gives.
    let bytes = firmware_bytes(3 * 1024 * 1024 + 17);
    let url = api
        .call(
            "GetCOSURL",
            &json!({"ProductId": pid, "FirmwareVersion": "2.0.0"}),
        )
        .await
        .unwrap()["Url"]
        .as_str()
        .unwrap()
        .to_owned();
    reqwest::Client::new()
        .put(&url)
        .body(bytes.clone())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(
        error_code(
            api.call(
                "UploadFirmware",
                &json!({"ProductId": pid, "FirmwareVersion": "2.0.0", "Md5sum": "0".repeat(32),
                        "FileSize": bytes.len()}),
            )
            .await
        ),
        "InvalidParameterValue"
    );
    api.call(
        "UploadFirmware",
        &json!({"ProductId": pid, "FirmwareVersion": "2.0.0", "Md5sum": md5_hex(&bytes),
                "FileSize": bytes.len(), "FirmwareName": "spring", "FirmwareDescription": "d"}),
    )
    .await
    .unwrap();
    // A registered version cannot be replaced, nor registered twice: GetCOSURL says so,
    // and an upload URL given before is refused.
    assert_eq!(
        error_code(
            api.call(
                "GetCOSURL",
                &json!({"ProductId": pid, "FirmwareVersion": "2.0.0"})
            )
            .await
        ),
        "InvalidParameterValue.FirmwareAlreadyExist"
    );
    let again = reqwest::Client::new()
        .put(&url)
        .body(b"x".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 409);
    let tampered = url.replace("sign=", "sign=00");
    let refused = reqwest::Client::new()
        .put(&tampered)
        .body(b"x".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let described = api
        .call(
            "DescribeFirmware",
            &json!({"ProductId": pid, "FirmwareVersion": "2.0.0"}),
        )
        .await
        .unwrap();
    assert_eq!(described["Md5sum"], md5_hex(&bytes));
    assert_eq!(described["Name"], "spring");
    assert!(described["Createtime"].is_i64());
    let versions = api
        .call("GetAllVersion", &json!({"ProductId": pid}))
        .await
        .unwrap();
    assert_eq!(versions["Version"], json!(["2.0.0"]));

    // Device a is online and reports 1.0.0; b is offline.
    let (report_a, update_a) = (
        format!("$ota/report/{pid}/a"),
        format!("$ota/update/{pid}/a"),
    );
    let mut a = TestDevice::connect(&hub, &fresh(&pid, "a", &psk_a)).await;
    a.subscribe(&update_a).await;
    a.send_raw(&report_a, report_version("1.0.0"), QoS::AtLeastOnce)
        .await;
    assert_eq!(
        a.receive(&update_a).await,
        json!({"result_code": 0, "result_msg": "success", "type": "report_version_rsp",
               "version": "1.0.0"})
    );

    let task = api
        .call(
            "BatchUpdateFirmware",
            &json!({"ProductId": pid, "FirmwareVersion": "2.0.0", "DeviceNames": ["a", "b"]}),
        )
        .await
        .unwrap()["TaskId"]
        .as_i64()
        .unwrap();
    assert_eq!(
        error_code(
            api.call(
                "BatchUpdateFirmware",
                &json!({"ProductId": pid, "FirmwareVersion": "2.0.0", "DeviceNames": ["a"]}),
            )
            .await
        ),
        "FailedOperation.DeviceIsUpdating"
    );
    let push = a.receive(&update_a).await;
    let keys: Vec<&str> = push
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["file_size", "md5sum", "type", "url", "version"]);
    assert_eq!(push["type"], "update_firmware");
    assert_eq!(push["version"], "2.0.0");
    assert_eq!(push["md5sum"], md5_hex(&bytes));
    assert_eq!(
        push["file_size"].as_u64(),
        Some(bytes.len() as u64),
        "an integer"
    );
    let download = push["url"].as_str().unwrap().to_owned();
    assert_eq!(
        task_device(&api, &pid, task, "a").await["Status"],
        2,
        "delivered"
    );
    assert_eq!(
        task_device(&api, &pid, task, "b").await["Status"],
        1,
        "pending"
    );

    // Download the first MB, "lose the connection", resume the C SDK's way.
    a.send_raw(
        &report_a,
        report_progress("downloading", 0, "2.0.0"),
        QoS::AtMostOnce,
    )
    .await;
    let (status, first, range) = get(&download, Some("bytes=0-1048575")).await;
    assert_eq!(status, 206);
    assert_eq!(
        range.as_deref(),
        Some(format!("bytes 0-1048575/{}", bytes.len()).as_str())
    );
    a.send_raw(
        &report_a,
        report_progress("downloading", 33, "2.0.0"),
        QoS::AtLeastOnce,
    )
    .await;
    let entry = task_device(&api, &pid, task, "a").await;
    assert_eq!(
        (entry["Status"].clone(), entry["Percent"].clone()),
        (json!(3), json!(33))
    );
    let (status, rest, _) = get(
        &download,
        Some(&format!("bytes={}-{}", first.len(), bytes.len())),
    )
    .await;
    assert_eq!(status, 206);
    let whole = [first, rest].concat();
    assert_eq!(
        md5_hex(&whole),
        push["md5sum"].as_str().unwrap(),
        "the MD5 the push named"
    );
    let (status, full, _) = get(&download, None).await;
    assert_eq!((status, full.len()), (200, bytes.len()));
    assert_eq!(get(&download.replace("sign=", "sign=0"), None).await.0, 403);
    assert_eq!(
        get(&download, Some(&format!("bytes={}-", bytes.len())))
            .await
            .0,
        416
    );

    a.send_raw(
        &report_a,
        report_progress("burning", 0, "2.0.0"),
        QoS::AtLeastOnce,
    )
    .await;
    assert_eq!(task_device(&api, &pid, task, "a").await["Status"], 4);
    a.send_raw(
        &report_a,
        report_progress("done", 0, "2.0.0"),
        QoS::AtLeastOnce,
    )
    .await;
    let entry = task_device(&api, &pid, task, "a").await;
    assert_eq!(entry["Status"], 6);
    assert_eq!(entry["DstVersion"], "2.0.0");
    assert_eq!(entry["OriVersion"], "1.0.0");
    let device = api
        .call(
            "DescribeDevice",
            &json!({"ProductId": pid, "DeviceName": "a"}),
        )
        .await
        .unwrap();
    assert_eq!(device["Version"], "2.0.0");

    // b comes online and reports its version: the update reaches it now; it fails (MD5).
    let (report_b, update_b) = (
        format!("$ota/report/{pid}/b"),
        format!("$ota/update/{pid}/b"),
    );
    let mut b = TestDevice::connect(&hub, &fresh(&pid, "b", &psk_b)).await;
    b.subscribe(&update_b).await;
    b.send_raw(&report_b, report_version("1.0.0"), QoS::AtLeastOnce)
        .await;
    assert_eq!(b.receive(&update_b).await["type"], "report_version_rsp");
    assert_eq!(b.receive(&update_b).await["type"], "update_firmware");
    b.send_raw(
        &report_b,
        report_progress("fail", 0, "2.0.0"),
        QoS::AtLeastOnce,
    )
    .await;
    let entry = task_device(&api, &pid, task, "b").await;
    assert_eq!(
        (entry["Status"].clone(), entry["Retcode"].clone()),
        (json!(5), json!(-4))
    );
    assert_eq!(entry["ErrMsg"], "time_out");

    let stats = json!({"ProductId": pid, "FirmwareVersion": "2.0.0"});
    let before = api
        .call("DescribeFirmwareTaskStatistics", &stats)
        .await
        .unwrap();
    assert_eq!(
        (
            before["SuccessTotal"].clone(),
            before["FailureTotal"].clone(),
            before["UpgradingTotal"].clone()
        ),
        (json!(1), json!(1), json!(0))
    );
    // Retry b: it is pushed again at once; cancel it.
    let device_task =
        json!({"ProductId": pid, "FirmwareVersion": "2.0.0", "TaskId": task, "DeviceName": "b"});
    assert_eq!(
        error_code(api.call("CancelDeviceFirmwareTask", &json!({"ProductId": pid, "FirmwareVersion": "2.0.0", "TaskId": task, "DeviceName": "a"})).await),
        "FailedOperation.DeviceFirmwareTaskAlreadDone"
    );
    api.call("RetryDeviceFirmwareTask", &device_task)
        .await
        .unwrap();
    assert_eq!(b.receive(&update_b).await["type"], "update_firmware");
    assert_eq!(task_device(&api, &pid, task, "b").await["Status"], 2);
    api.call("CancelDeviceFirmwareTask", &device_task)
        .await
        .unwrap();
    assert_eq!(task_device(&api, &pid, task, "b").await["Status"], 9);
    let described = api
        .call(
            "DescribeFirmwareTask",
            &json!({"ProductId": pid, "FirmwareVersion": "2.0.0", "TaskId": task}),
        )
        .await
        .unwrap();
    assert_eq!(described["Status"], 3, "no device is still updating");
    assert_eq!(described["UpgradeMode"], "devicenames");
    drop((a, b));

    // kill -9: task state, statistics and the download URL all survive.
    let distribution = json!({"ProductId": pid, "FirmwareVersion": "2.0.0", "TaskId": task});
    let before = api
        .call("DescribeFirmwareTaskDistribution", &distribution)
        .await
        .unwrap();
    hub.kill9();
    let hub = Hub::start_with(dir.path(), "", NO_CONNECT_INTERVAL);
    let api = hub.client();
    let after = api
        .call("DescribeFirmwareTaskDistribution", &distribution)
        .await
        .unwrap();
    assert_eq!(before["StatusInfos"], after["StatusInfos"]);
    assert_eq!(
        after["StatusInfos"],
        json!([{"Status": 6, "Total": 1}, {"Status": 9, "Total": 1}])
    );
    let port = |u: &str| u.split('/').nth(2).unwrap().to_owned();
    let moved = download.replace(&port(&download), &port(&hub.endpoint));
    let (status, full, _) = get(&moved, Some("bytes=3000000-")).await;
    assert_eq!(status, 206);
    assert_eq!(full, bytes[3_000_000..]);
}

/// One simulated device: connects, reports 1.0.0, then answers the update push as its
/// `fate` says: 0 updates, 1 fails, 2 stops while downloading.
async fn simulated(hub_addr: std::net::SocketAddr, pid: String, dn: String, psk: String, fate: u8) {
    let creds = fresh(&pid, &dn, &psk);
    let mut options =
        rumqttc::MqttOptions::new(&creds.client_id, hub_addr.ip().to_string(), hub_addr.port());
    options.set_credentials(&creds.username, &creds.password);
    options.set_keep_alive(Duration::from_secs(60));
    let (c, mut events) = rumqttc::AsyncClient::new(options, 16);
    let update = format!("$ota/update/{pid}/{dn}");
    let report = format!("$ota/report/{pid}/{dn}");
    c.subscribe(&update, QoS::AtLeastOnce).await.unwrap();
    c.publish(&report, QoS::AtLeastOnce, false, report_version("1.0.0"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + STEP * 3;
    loop {
        let Ok(polled) = tokio::time::timeout_at(deadline, events.poll()).await else {
            panic!("{dn}: no update within the deadline");
        };
        let event = polled.unwrap_or_else(|e| panic!("{dn}: {e}"));
        let Event::Incoming(Packet::Publish(p)) = event else {
            continue;
        };
        let msg: Value = serde_json::from_slice(&p.payload).unwrap();
        if msg["type"] != "update_firmware" {
            continue;
        }
        let steps: Vec<Vec<u8>> = match fate {
            0 => vec![
                report_progress("downloading", 100, "2.0.0"),
                report_progress("burning", 0, "2.0.0"),
                report_progress("done", 0, "2.0.0"),
            ],
            1 => vec![report_progress("fail", 0, "2.0.0")],
            _ => vec![report_progress("downloading", 40, "2.0.0")],
        };
        for step in steps {
            c.publish(&report, QoS::AtLeastOnce, false, step)
                .await
                .unwrap();
        }
        // Keep polling until those are acknowledged, then stay connected.
        let mut acks = 0;
        while acks < if fate == 0 { 3 } else { 1 } {
            if let Event::Incoming(Packet::PubAck(_)) =
                tokio::time::timeout_at(deadline, events.poll())
                    .await
                    .unwrap()
                    .unwrap()
            {
                acks += 1;
            }
        }
        return;
    }
}

#[tokio::test]
async fn a_task_over_1000_devices_reports_exact_statistics() {
    const DEVICES: usize = 1000;
    let dir = support::workdir();
    let hub = Hub::start_with(dir.path(), "", NO_CONNECT_INTERVAL);
    let api = hub.client();
    let pid = support::create_product(&api, "meters", "2").await;
    upload(&api, &pid, "2.0.0", &firmware_bytes(64 * 1024)).await;
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let dn = format!("m{i:04}");
        let psk = support::create_device(&api, &pid, &dn).await["DevicePsk"]
            .as_str()
            .unwrap()
            .to_owned();
        devices.push((dn, psk));
    }
    // Every device reports 1.0.0 before the task picks the devices on that version.
    let mut sims = Vec::new();
    for (i, (dn, psk)) in devices.into_iter().enumerate() {
        let fate = match i % 10 {
            0 => 1,
            1 => 2,
            _ => 0,
        };
        let (addr, pid) = (hub.mqtt_addr, pid.clone());
        sims.push(tokio::spawn(async move {
            simulated(addr, pid, dn, psk, fate).await;
        }));
    }
    // Wait until every device's version is recorded (the hub answers report_version first).
    let deadline = std::time::Instant::now() + STEP * 3;
    loop {
        let on_1 = api
            .call(
                "DescribeDevices",
                &json!({"ProductId": pid, "FirmwareVersion": "1.0.0", "Limit": 10}),
            )
            .await
            .unwrap()["TotalCount"]
            .as_u64()
            .unwrap();
        if on_1 == DEVICES as u64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {on_1} devices reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let task = api
        .call(
            "BatchUpdateFirmware",
            &json!({"ProductId": pid, "FirmwareVersion": "2.0.0", "FirmwareOriVersion": "1.0.0"}),
        )
        .await
        .unwrap()["TaskId"]
        .as_i64()
        .unwrap();
    for sim in sims {
        sim.await.unwrap();
    }
    let stats = api
        .call(
            "DescribeFirmwareTaskStatistics",
            &json!({"ProductId": pid, "FirmwareVersion": "2.0.0"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            stats["SuccessTotal"].clone(),
            stats["FailureTotal"].clone(),
            stats["UpgradingTotal"].clone()
        ),
        (json!(800), json!(100), json!(100)),
        "{stats}"
    );
    let distribution = api
        .call(
            "DescribeFirmwareTaskDistribution",
            &json!({"ProductId": pid, "FirmwareVersion": "2.0.0", "TaskId": task}),
        )
        .await
        .unwrap();
    let by_status: BTreeMap<i64, i64> = distribution["StatusInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["Status"].as_i64().unwrap(), s["Total"].as_i64().unwrap()))
        .collect();
    assert_eq!(by_status, BTreeMap::from([(3, 100), (5, 100), (6, 800)]));
    let task_info = api
        .call(
            "DescribeFirmwareTask",
            &json!({"ProductId": pid, "FirmwareVersion": "2.0.0", "TaskId": task}),
        )
        .await
        .unwrap();
    assert_eq!(task_info["Status"], 1, "100 devices are still downloading");
    assert_eq!(task_info["UpgradeMode"], "originalVersion");
    assert_eq!(task_info["OriginalVersion"], "1.0.0");
    let updated = api
        .call(
            "DescribeDevices",
            &json!({"ProductId": pid, "FirmwareVersion": "2.0.0", "Limit": 10}),
        )
        .await
        .unwrap();
    assert_eq!(updated["TotalCount"], 800);
}
