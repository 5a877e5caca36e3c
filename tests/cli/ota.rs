//! `eddy firmware upload` (GetCOSURL, the PUT, UploadFirmware) and `eddy ota
//! start/status/cancel/retry`, against a real hub.

use md5::Digest as _;

use crate::support::{Hub, create_device, create_product, workdir};
use crate::{manage, ok};

#[tokio::test]
async fn firmware_upload_and_an_update_task_from_the_command_line() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let api = hub.client();
    let pid = create_product(&api, "kettles", "2").await;
    create_device(&api, &pid, "k1").await;

    let file = dir.path().join("kettle-2.0.0.bin");
    let bytes: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let md5 = hex::encode(md5::Md5::digest(&bytes));
    let out = ok(manage(
        &hub,
        &[
            "firmware",
            "upload",
            &pid,
            "2.0.0",
            file.to_str().unwrap(),
            "--name",
            "spring",
        ],
    ));
    assert!(out.contains(&md5) && out.contains("700000 bytes"), "{out}");
    let listed = ok(manage(&hub, &["firmware", "list", &pid]));
    assert!(
        listed.contains("2.0.0") && listed.contains(&md5),
        "{listed}"
    );
    // The same version again is refused, with the hub's reason.
    let again = manage(
        &hub,
        &["firmware", "upload", &pid, "2.0.0", file.to_str().unwrap()],
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("registered already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let started = ok(manage(
        &hub,
        &["ota", "start", &pid, "2.0.0", "--devices", "k1"],
    ));
    let task = started
        .split_whitespace()
        .nth(2)
        .expect("update task <id> started")
        .to_owned();
    let status = ok(manage(&hub, &["ota", "status", &pid, "2.0.0", &task]));
    assert!(
        status.contains("k1") && status.contains("pending"),
        "{status}"
    );
    assert!(status.contains("1 updating"), "{status}");
    ok(manage(&hub, &["ota", "cancel", &pid, "2.0.0", &task, "k1"]));
    // Nothing is updating any more: --watch returns at once with the final table.
    let watched = ok(manage(
        &hub,
        &["ota", "status", &pid, "2.0.0", &task, "--watch"],
    ));
    assert!(
        watched.contains("cancelled") && watched.contains("0 updating"),
        "{watched}"
    );
    ok(manage(&hub, &["ota", "retry", &pid, "2.0.0", &task, "k1"]));
    let status = ok(manage(
        &hub,
        &["ota", "status", &pid, "2.0.0", &task, "--json"],
    ));
    let parsed: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(parsed["Devices"][0]["Status"], 1, "pending again");
}
