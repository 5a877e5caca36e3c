//! The bootstrap admin API key: from the config, or generated once and kept.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use eddy_core::secret::ExposeSecret;
use eddy_core::time::unix_now;
use eddy_registry::generate_api_key;
use eddy_store::{ApiKeyOrigin, ApiKeyRecord, Store};
use serde_json::json;

use crate::config::Config;

/// Makes sure an admin key exists; returns its SecretId.
///
/// A key in the config is stored (replacing an earlier config key with the same id). With
/// none configured, the key generated on first start is reused, and written again to
/// `<data-dir>/admin-credentials.json` if that file went missing.
pub async fn ensure(config: &Config, store: &dyn Store) -> anyhow::Result<String> {
    if let (Some(id), Some(key)) = (&config.api.admin_secret_id, &config.api.admin_secret_key) {
        store
            .upsert_api_key(&ApiKeyRecord {
                secret_id: id.clone(),
                secret_key: key.clone(),
                origin: ApiKeyOrigin::Config,
                description: "admin key from the configuration".into(),
                created_at: unix_now(),
            })
            .await
            .context("storing the configured admin API key")?;
        tracing::info!(secret_id = %id, "admin API key from the configuration");
        return Ok(id.clone());
    }
    let path = config.admin_credentials_path();
    let key = match store.generated_api_key().await? {
        Some(key) => key,
        None => {
            let fresh = generate_api_key();
            let record = ApiKeyRecord {
                secret_id: fresh.secret_id,
                secret_key: fresh.secret_key,
                origin: ApiKeyOrigin::Generated,
                description: "admin key generated on first start".into(),
                created_at: unix_now(),
            };
            // The file first: a crash between the two leaves a file that a restart
            // rewrites, never a stored key nobody can read.
            write_credentials(&path, &record)?;
            store
                .upsert_api_key(&record)
                .await
                .context("storing the generated admin API key")?;
            tracing::info!(secret_id = %record.secret_id, "generated the admin API key");
            record
        }
    };
    if !path.exists() {
        write_credentials(&path, &key)?;
    }
    println!("eddy: admin API credentials are in {}", path.display());
    Ok(key.secret_id)
}

/// Writes the credentials file with mode 0600, atomically (temp file + rename).
fn write_credentials(path: &Path, key: &ApiKeyRecord) -> anyhow::Result<()> {
    let body = serde_json::to_string_pretty(&json!({
        "SecretId": key.secret_id,
        "SecretKey": key.secret_key.expose_secret(),
    }))?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(body.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
