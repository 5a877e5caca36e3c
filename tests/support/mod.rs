//! Starting a real `eddy serve` process for end-to-end tests.
//!
//! Each hub gets its own data dir and ephemeral ports (`127.0.0.1:0`); the test learns the
//! bound address from the `eddy: api listening on …` line the hub prints on stdout, so
//! nothing races for a port and nothing sleeps. The hub's stderr (its log) goes to a file
//! in the data dir's parent so a test can inspect it.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use eddy::client::{ApiClient, ClientError, Credentials};
use serde_json::Value;

/// How long a hub may take to start on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub fn eddy_bin() -> &'static str {
    env!("CARGO_BIN_EXE_eddy")
}

/// A running hub. Dropping it kills the process.
#[derive(Debug)]
pub struct Hub {
    child: Child,
    /// Holds config, data dir and log; kept for the life of the test.
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    pub endpoint: String,
    /// The MQTT listener, `127.0.0.1:PORT`.
    pub mqtt_addr: std::net::SocketAddr,
    /// The other listeners the hub reported (`tls`, `ws`, `wss`, `coap`, `coap-dtls`).
    pub listeners: std::collections::HashMap<String, std::net::SocketAddr>,
}

/// A fresh directory for one hub (and its restarts).
pub fn workdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("eddy-e2e-")
        .tempdir()
        .expect("create temp dir")
}

impl Hub {
    /// Starts a hub in `root`, reusing its data dir if one is there.
    pub fn start(root: &Path) -> Hub {
        Self::start_with(root, "", &[])
    }

    /// Starts a hub with extra `[api]` keys (TOML lines) and extra environment variables.
    pub fn start_with(root: &Path, api_toml: &str, env: &[(&str, &str)]) -> Hub {
        Self::start_configured(root, api_toml, "", env)
    }

    /// Starts a hub with extra `[api]` keys, more TOML tables at the end of its
    /// configuration (`[mqtt.clients]`…), and extra environment variables.
    pub fn start_configured(
        root: &Path,
        api_toml: &str,
        tables: &str,
        env: &[(&str, &str)],
    ) -> Hub {
        let data_dir = root.join("data");
        let config_path = root.join("eddy.toml");
        let config = format!(
            "data-dir = {data:?}\n\n[api]\nlisten = \"127.0.0.1:0\"\n{api_toml}\n\n[mqtt]\nlisten = \"127.0.0.1:0\"\ntls-listen = \"127.0.0.1:0\"\nws-listen = \"127.0.0.1:0\"\nwss-listen = \"127.0.0.1:0\"\n\n[coap]\nlisten = \"127.0.0.1:0\"\ndtls-listen = \"127.0.0.1:0\"\n\n[log]\nlevel = \"debug,fjall=info,lsm_tree=info,datafusion=info\"\n\n{tables}\n",
            data = data_dir.display().to_string(),
        );
        std::fs::write(&config_path, config).expect("write config");
        let log_path = root.join(format!("hub-{}.log", std::process::id()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open hub log");
        let mut command = Command::new(eddy_bin());
        // The hub reads EDDY_* as configuration: only what the test sets may reach it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("EDDY_") {
                command.env_remove(key);
            }
        }
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn eddy serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Reads the hub's stdout for its whole life, so the pipe never fills up. The API
        // line comes last, once every listener is up.
        std::thread::spawn(move || {
            let mut mqtt = None;
            let mut listeners = std::collections::HashMap::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("eddy: mqtt listening on ") {
                    mqtt = addr.parse().ok();
                } else if let Some(rest) = line.strip_prefix("eddy: ")
                    && let Some((name, addr)) = rest.split_once(" listening on ")
                    && let Ok(addr) = addr.parse()
                {
                    // "mqtt-tls", "coap-dtls"…: keyed without the "mqtt-" prefix.
                    let name = name.strip_prefix("mqtt-").unwrap_or(name);
                    listeners.insert(name.to_owned(), addr);
                }
                if let Some(url) = line.strip_prefix("eddy: api listening on ") {
                    let _ = tx.send((url.to_owned(), mqtt, std::mem::take(&mut listeners)));
                }
            }
        });
        let Ok((endpoint, Some(mqtt_addr), listeners)) = rx.recv_timeout(START_TIMEOUT) else {
            let _ = child.kill();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("eddy serve did not report its API address; its log:\n{log}");
        };
        Hub {
            child,
            root: root.to_owned(),
            data_dir,
            config_path,
            log_path,
            endpoint,
            mqtt_addr,
            listeners,
        }
    }

    /// The address of the listener the hub reported as `name` (`tls`, `ws`, `coap`…).
    pub fn listener(&self, name: &str) -> std::net::SocketAddr {
        *self
            .listeners
            .get(name)
            .unwrap_or_else(|| panic!("the hub reported no {name} listener: {:?}", self.listeners))
    }

    /// SIGKILL, no shutdown of any kind.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9 eddy");
        self.child.wait().expect("reap eddy");
    }

    pub fn credentials(&self) -> Credentials {
        Credentials::from_file(&self.data_dir.join("admin-credentials.json"))
            .expect("admin credentials written by the hub")
    }

    pub fn client(&self) -> ApiClient {
        ApiClient::new(&self.endpoint, self.credentials()).expect("client")
    }

    pub fn client_with(&self, credentials: Credentials) -> ApiClient {
        ApiClient::new(&self.endpoint, credentials).expect("client")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the hub was doing (the end of its log).
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(150)..];
            eprintln!(
                "--- last {} lines of the hub's log ---\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// Creates a product whose devices use keys (`EncryptionType "2"`, or `"1"` for
/// certificates) and returns its ProductId.
pub async fn create_product(api: &ApiClient, name: &str, encryption: &str) -> String {
    let created = api
        .call(
            "CreateProduct",
            &serde_json::json!({
                "ProductName": name,
                "ProductProperties": { "EncryptionType": encryption },
            }),
        )
        .await
        .expect("CreateProduct");
    created["ProductId"]
        .as_str()
        .expect("ProductId is a string")
        .to_owned()
}

/// Creates a device and returns the `CreateDevice` response.
pub async fn create_device(api: &ApiClient, product_id: &str, name: &str) -> Value {
    api.call(
        "CreateDevice",
        &serde_json::json!({ "ProductId": product_id, "DeviceName": name }),
    )
    .await
    .expect("CreateDevice")
}

/// The error code of a failed call; panics on success.
pub fn error_code(result: Result<Value, ClientError>) -> String {
    match result {
        Err(ClientError::Api { code, .. }) => code,
        Err(other) => panic!("expected an API error, got {other}"),
        Ok(value) => panic!("expected an API error, got success {value}"),
    }
}

/// The error code and message of a failed call.
pub fn error_of(result: Result<Value, ClientError>) -> (String, String) {
    match result {
        Err(ClientError::Api { code, message, .. }) => (code, message),
        Err(other) => panic!("expected an API error, got {other}"),
        Ok(value) => panic!("expected an API error, got success {value}"),
    }
}

/// A raw answer: HTTP status, Content-Type, and the body parsed as JSON.
pub struct RawAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl RawAnswer {
    pub fn error_code(&self) -> &str {
        self.body["Response"]["Error"]["Code"]
            .as_str()
            .unwrap_or("")
    }

    pub fn error_message(&self) -> &str {
        self.body["Response"]["Error"]["Message"]
            .as_str()
            .unwrap_or("")
    }
}

/// The headers Tencent's SDKs send for a signed JSON POST, for `body` as given.
pub fn signed_headers(
    endpoint: &str,
    credentials: &Credentials,
    action: &str,
    body: &[u8],
    timestamp: i64,
) -> Vec<(String, String)> {
    signed_headers_as(
        endpoint,
        credentials,
        action,
        body,
        timestamp,
        "application/json",
    )
}

/// As [`signed_headers`], signed and sent with another Content-Type.
pub fn signed_headers_as(
    endpoint: &str,
    credentials: &Credentials,
    action: &str,
    body: &[u8],
    timestamp: i64,
    content_type: &str,
) -> Vec<(String, String)> {
    use eddy_core::secret::ExposeSecret;
    let host = endpoint.trim_start_matches("http://").to_owned();
    let authorization = eddy_api::tc3::authorization(&eddy_api::tc3::SignRequest {
        secret_id: &credentials.secret_id,
        secret_key: credentials.secret_key.expose_secret(),
        service: "iotcloud",
        host: &host,
        content_type,
        payload: body,
        timestamp,
    })
    .expect("sign");
    vec![
        ("Host".into(), host),
        ("Content-Type".into(), content_type.into()),
        ("Authorization".into(), authorization),
        ("X-TC-Action".into(), action.into()),
        ("X-TC-Version".into(), "2021-04-08".into()),
        ("X-TC-Timestamp".into(), timestamp.to_string()),
        ("X-TC-Region".into(), "ap-guangzhou".into()),
    ]
}

/// Sends a request exactly as given and parses whatever comes back.
pub async fn raw_request(
    method: reqwest::Method,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> RawAnswer {
    let mut request = reqwest::Client::new().request(method, url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("response is not JSON ({e}): {text:?}"));
    RawAnswer {
        status,
        content_type,
        body,
    }
}

pub fn now() -> i64 {
    eddy_core::time::unix_now()
}

/// Longest a one-shot `eddy` command may run before the test calls it hung.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// Runs a command to completion, killing it if it outlives [`COMMAND_DEADLINE`] (a config
/// error that failed to stop `eddy serve` must fail the test, not hang it).
pub fn output_within(mut command: Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run eddy");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(COMMAND_DEADLINE) {
        Ok(out) => out.expect("wait for eddy"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("eddy did not exit within {COMMAND_DEADLINE:?}");
        }
    }
}
