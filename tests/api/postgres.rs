//! The hub with its registry in PostgreSQL (`store.postgres-url`), against a real server.

use std::process::Command;

use serde_json::json;

use crate::support::{Hub, create_device, create_product, workdir};

/// The admin URL from `scripts/start-postgres.sh`, or `None` to skip outside CI.
fn postgres_url() -> Option<String> {
    match std::env::var("EDDY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "EDDY_TEST_POSTGRES_URL is not set but CI=true: start PostgreSQL (scripts/start-postgres.sh)"
            )
        }
        _ => {
            eprintln!(
                "postgres e2e skipped: set EDDY_TEST_POSTGRES_URL (scripts/start-postgres.sh prints one)"
            );
            None
        }
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh database, dropped when the guard goes.
struct TempDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TempDatabase {
    fn create(admin_url: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("eddy_e2e_{}_{nanos}", std::process::id());
        psql(admin_url, &format!("CREATE DATABASE {name}"));
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        Self {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin_url,
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

#[tokio::test]
async fn registry_in_postgresql_survives_kill_9() {
    let Some(admin_url) = postgres_url() else {
        return;
    };
    let db = TempDatabase::create(&admin_url);
    let dir = workdir();
    let env = [("EDDY_STORE__POSTGRES_URL", db.url.as_str())];
    let hub = Hub::start_with(dir.path(), "", &env);
    let api = hub.client();
    let pid = create_product(&api, "pg-prod", "2").await;
    let psk = create_device(&api, &pid, "d1").await["DevicePsk"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !hub.data_dir.join("eddy.sqlite").exists(),
        "with a PostgreSQL URL no SQLite registry is made"
    );
    hub.kill9();

    let hub = Hub::start_with(dir.path(), "", &env);
    let d = hub
        .client()
        .call(
            "DescribeDevice",
            &json!({ "ProductId": pid, "DeviceName": "d1" }),
        )
        .await
        .unwrap();
    assert_eq!(d["DevicePsk"], psk.as_str());
    drop(hub);

    // A wrong URL is a clear startup error naming the setting.
    let mut command = Command::new(crate::support::eddy_bin());
    command
        .args(["serve", "--config"])
        .arg(dir.path().join("eddy.toml"))
        .env(
            "EDDY_STORE__POSTGRES_URL",
            "postgres://nobody@127.0.0.1:9/none",
        );
    let out = crate::support::output_within(command);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("store.postgres-url"), "{stderr}");
}
