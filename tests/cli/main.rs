//! The `eddy` command line: configuration handling and the management subcommands,
//! run as a user would run them, against a real hub.

// Test code: a failed expectation panics with its context.
#![allow(clippy::unwrap_used, clippy::panic)]

mod dlq;
mod logs;
mod ota;
mod rules;
#[path = "../support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::{Hub, eddy_bin, output_within, workdir};

fn eddy(args: &[&str]) -> Output {
    let mut command = Command::new(eddy_bin());
    command
        .args(args)
        .env_remove("EDDY_ENDPOINT")
        .env_remove("EDDY_SECRET_ID")
        .env_remove("EDDY_SECRET_KEY");
    output_within(command)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a management command against `hub`, with the hub's config (for the data dir and
/// its admin credentials) and its real endpoint.
fn manage(hub: &Hub, args: &[&str]) -> Output {
    let config = hub.config_path.to_str().unwrap();
    let mut full = vec!["--config", config];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--endpoint", &hub.endpoint]);
    eddy(&full)
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "eddy failed: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The value column of a field in a two-column table printout.
fn field(table: &str, name: &str) -> String {
    table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .and_then(|l| l.split('┆').nth(1))
        .map(|v| {
            v.trim_matches(|c: char| c.is_whitespace() || c == '│')
                .to_owned()
        })
        .unwrap_or_default()
}

#[test]
fn version_and_help() {
    let out = ok(eddy(&["--version"]));
    assert_eq!(out.trim(), format!("eddy {}", env!("CARGO_PKG_VERSION")));
    let help = ok(eddy(&["--help"]));
    for command in [
        "serve",
        "config",
        "product",
        "device",
        "topic-policy",
        "rule",
        "passwd",
    ] {
        assert!(help.contains(command), "--help lists {command}:\n{help}");
    }
    let help = ok(eddy(&["device", "create", "--help"]));
    assert!(
        help.contains("--psk") && help.contains("--endpoint"),
        "{help}"
    );
}

#[test]
fn config_default_is_the_embedded_file_and_loads() {
    let printed = ok(eddy(&["config", "default"]));
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/default.toml"))
            .unwrap();
    assert_eq!(printed, shipped);
    for key in [
        "data-dir",
        "[api]",
        "listen = \"0.0.0.0:8080\"",
        "admin-secret-id",
        "admin-secret-key",
        "[mqtt]",
        "listen = \"0.0.0.0:1883\"",
    ] {
        assert!(printed.contains(key), "default config mentions {key}");
    }

    // The printed file, used as a config, starts a hub (ports and data dir moved aside).
    let dir = workdir();
    let file = dir.path().join("from-default.toml");
    std::fs::write(&file, &printed).unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(eddy_bin())
        .args(["serve", "--config", file.to_str().unwrap()])
        .env("EDDY_API__LISTEN", "127.0.0.1:0")
        .env("EDDY_MQTT__LISTEN", "127.0.0.1:0")
        .env("EDDY_DATA_DIR", &data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let started =
        lines.any(|l| l.is_ok_and(|l| l.starts_with("eddy: api listening on http://127.0.0.1:")));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        started,
        "eddy serve with the default config reported its API address"
    );
    assert!(
        data.join("eddy.sqlite").exists(),
        "EDDY_DATA_DIR was honoured"
    );
}

#[test]
fn config_errors_name_the_key_and_the_file() {
    let dir = workdir();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[api]\nlisten = \"127.0.0.1:0\"\nlisten-port = 5\n").unwrap();
    let out = eddy(&["serve", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("listen-port"), "{err}");
    assert!(err.contains(file.to_str().unwrap()), "{err}");

    std::fs::write(&file, "[api]\nlisten = \"not an address\"\n").unwrap();
    let err = stderr(&eddy(&["serve", "--config", file.to_str().unwrap()]));
    assert!(
        err.contains("api.listen") || err.contains("listen"),
        "{err}"
    );

    let missing = dir.path().join("nope.toml");
    let err = stderr(&eddy(&["serve", "--config", missing.to_str().unwrap()]));
    assert!(
        err.contains("nope.toml") && err.contains("does not exist"),
        "{err}"
    );

    let mut command = Command::new(eddy_bin());
    command
        .args(["serve"])
        .env("EDDY_API__LISTEN", "127.0.0.1:0")
        .env("EDDY_DATA_DIR", dir.path().join("data"))
        .env("EDDY_API__BOGUS_KEY", "1");
    let out = output_within(command);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bogus-key"), "{err}");
}

#[test]
fn passwd_hashes_standard_input_and_needs_no_config() {
    let dir = workdir();
    let input = dir.path().join("password.txt");
    std::fs::write(&input, "s3cret pass\n").unwrap();
    // A broken configuration must not stop anyone from making a hash.
    let out = Command::new(eddy_bin())
        .args(["passwd", "--password-stdin"])
        .env("EDDY_CONFIG", dir.path().join("missing.toml"))
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let phc = ok(out);
    assert!(phc.trim().starts_with("$argon2id$v=19$"), "{phc}");
    assert_eq!(phc.lines().count(), 1, "only the hash on stdout: {phc}");

    // Without the flag and without a terminal it says what to do (stdin is /dev/null).
    let out = eddy(&["passwd"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--password-stdin"),
        "{}",
        stderr(&out)
    );
    let help = ok(eddy(&["passwd", "--help"]));
    assert!(
        help.contains("--password-stdin") && help.contains("argon2id"),
        "{help}"
    );
}

#[test]
fn management_commands_drive_the_api() {
    let dir = workdir();
    let hub = Hub::start(dir.path());

    let created = ok(manage(&hub, &["product", "create", "cli-prod", "--json"]));
    let created: Value = serde_json::from_str(&created).unwrap();
    let pid = created["ProductId"].as_str().unwrap().to_owned();
    assert_eq!(
        created["ProductProperties"]["EncryptionType"], "2",
        "--auth key is the default"
    );

    let table = ok(manage(&hub, &["product", "list"]));
    assert!(
        table.contains(&pid) && table.contains("cli-prod") && table.contains("key"),
        "{table}"
    );
    assert!(table.contains("1 product(s) in all"), "{table}");

    let cert = ok(manage(
        &hub,
        &["product", "create", "cli-cert", "--auth", "cert"],
    ));
    assert_eq!(field(&cert, "EncryptionType"), "1", "{cert}");

    let dev = ok(manage(&hub, &["device", "create", &pid, "sensor-1"]));
    assert!(
        dev.contains("sensor-1") && dev.contains("DevicePsk"),
        "{dev}"
    );
    let psk = "MDEyMzQ1Njc4OWFiY2RlZg==";
    let dev = ok(manage(
        &hub,
        &["device", "create", &pid, "sensor-2", "--psk", psk],
    ));
    assert!(dev.contains(psk), "{dev}");

    let list = ok(manage(&hub, &["device", "list", &pid]));
    assert!(
        list.contains("sensor-1") && list.contains("sensor-2"),
        "{list}"
    );
    assert!(
        list.contains("inactive") && list.contains("enabled"),
        "{list}"
    );

    ok(manage(
        &hub,
        &["device", "disable", &pid, "sensor-1", "sensor-2"],
    ));
    let shown: Value = serde_json::from_str(&ok(manage(
        &hub,
        &["device", "show", &pid, "sensor-2", "--json"],
    )))
    .unwrap();
    assert_eq!(shown["EnableState"], 0);
    assert_eq!(shown["DevicePsk"], psk);
    ok(manage(&hub, &["device", "enable", &pid, "sensor-2"]));
    let shown = ok(manage(&hub, &["device", "show", &pid, "sensor-2"]));
    assert_eq!(field(&shown, "EnableState"), "1", "{shown}");

    ok(manage(
        &hub,
        &[
            "topic-policy",
            "create",
            &pid,
            "custom/up",
            "--privilege",
            "pub",
        ],
    ));
    let policies = ok(manage(&hub, &["topic-policy", "list", &pid]));
    assert!(
        policies.contains(&format!("{pid}/${{deviceName}}/custom/up"))
            && policies.contains("custom"),
        "{policies}"
    );
    assert!(
        policies.contains("$shadow/operation/"),
        "defaults are listed: {policies}"
    );

    // API errors reach the user as a non-zero exit with Tencent's code.
    let out = manage(&hub, &["product", "delete", &pid]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("UnauthorizedOperation.DevicesExistUnderProduct"),
        "{}",
        stderr(&out)
    );
    let out = manage(&hub, &["device", "create", &pid, "bad/name"]);
    assert!(
        stderr(&out).contains("InvalidParameterValue"),
        "{}",
        stderr(&out)
    );

    ok(manage(&hub, &["device", "delete", &pid, "sensor-1"]));
    ok(manage(&hub, &["device", "delete", &pid, "sensor-2"]));
    let out = ok(manage(&hub, &["product", "delete", &pid]));
    assert!(out.contains("deleted product"), "{out}");

    // Credentials from the environment take precedence over the data dir's file.
    let mut command = Command::new(eddy_bin());
    command
        .args([
            "--config",
            hub.config_path.to_str().unwrap(),
            "product",
            "list",
        ])
        .args(["--endpoint", &hub.endpoint])
        .env("EDDY_SECRET_ID", "AKIDwrong")
        .env("EDDY_SECRET_KEY", "wrong");
    let out = output_within(command);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("AuthFailure.SecretIdNotFound"),
        "{}",
        stderr(&out)
    );

    // An unreachable hub is reported as such.
    let out = eddy(&[
        "product",
        "list",
        "--endpoint",
        "http://127.0.0.1:9",
        "--secret-id",
        "a",
        "--secret-key",
        "b",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach the Eddy API"),
        "{}",
        stderr(&out)
    );
}
