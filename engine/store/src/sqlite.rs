//! The embedded SQLite store.
//!
//! One database file under the data dir, in WAL mode with `synchronous=FULL` so that a
//! committed write survives a crash of the process (and of the machine). Migrations are
//! embedded from `migrations/sqlite/` and applied on open.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use eddy_core::secret::ExposeSecret;
use eddy_core::time::unix_now;
use eddy_core::{DeviceId, DeviceName, EncryptionType, ProductId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};

use crate::rows::{self, backend, contains_pattern, to_i64};
use crate::{
    ApiKeyRecord, Bound, DeleteProduct, DeviceFilter, DeviceRecord, FirmwareRecord,
    FirmwareTaskRecord, GroupRecord, Page, Paged, ProductRecord, Registered, Result, ShadowRecord,
    Store, StoreError, TaskDeviceFilter, TaskDeviceRecord, TopicPolicyRecord, TopicRuleChange,
    TopicRuleRecord,
};

mod firmware;
mod gateway;
mod groups;
mod registration;
mod rules;
mod shadows;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite behind [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// Maps a unique-constraint failure to [`StoreError::Conflict`], naming the clashing key.
fn conflict_or_backend(err: sqlx::Error, name_of: impl Fn(&str) -> &'static str) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        return StoreError::Conflict {
            what: name_of(db.message()),
        };
    }
    StoreError::Backend(err)
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(backend)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(backend)?;
        MIGRATOR.run(&pool).await?;
        tracing::debug!(path = %path.display(), "sqlite store open");
        Ok(Self { pool })
    }

    fn push_device_filter(qb: &mut QueryBuilder<'_, Sqlite>, product: &str, f: &DeviceFilter) {
        qb.push(" WHERE product_id = ")
            .push_bind(product.to_owned());
        if let Some(name) = &f.name_contains {
            qb.push(" AND device_name LIKE ")
                .push_bind(contains_pattern(name))
                .push(" ESCAPE '\\'");
        }
        if let Some(enabled) = f.enabled {
            qb.push(" AND enabled = ").push_bind(enabled);
        }
        if let Some(version) = &f.firmware_version {
            qb.push(" AND firmware_version = ")
                .push_bind(version.clone());
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn schema_version(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn insert_product(&self, p: &ProductRecord) -> Result<()> {
        let encryption: i64 = match p.encryption {
            EncryptionType::Certificate => 1,
            EncryptionType::Psk => 2,
        };
        sqlx::query(
            "INSERT INTO products (product_id, product_name, description, encryption_type,
                product_type, format, region, register_type, register_limit, product_secret,
                ca_cert_pem, ca_key_pem, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(p.id.as_str())
        .bind(p.name.as_str())
        .bind(&p.description)
        .bind(encryption)
        .bind(p.product_type)
        .bind(&p.format)
        .bind(&p.region)
        .bind(p.register_type)
        .bind(p.register_limit)
        .bind(p.secret.expose_secret())
        .bind(p.ca.as_ref().map(|ca| ca.cert_pem.as_str()))
        .bind(p.ca.as_ref().map(|ca| ca.key_pem.expose_secret()))
        .bind(p.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            conflict_or_backend(e, |msg| {
                if msg.contains("product_name") {
                    "product name"
                } else {
                    "product id"
                }
            })
        })?;
        Ok(())
    }

    async fn product(&self, id: &ProductId) -> Result<Option<ProductRecord>> {
        sqlx::query("SELECT * FROM products WHERE product_id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(rows::product)
            .transpose()
    }

    async fn list_products(&self, page: Page) -> Result<Paged<ProductRecord>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let rows = sqlx::query("SELECT * FROM products ORDER BY created_at, seq LIMIT ? OFFSET ?")
            .bind(to_i64(page.limit))
            .bind(to_i64(page.offset))
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Paged {
            total: u64::try_from(total).unwrap_or(0),
            items: rows.iter().map(rows::product).collect::<Result<_>>()?,
        })
    }

    async fn delete_product(&self, id: &ProductId) -> Result<DeleteProduct> {
        // One statement, so no read-then-write transaction can meet a concurrent writer
        // (SQLite would fail such an upgrade with SQLITE_BUSY instead of waiting).
        let done = sqlx::query(
            "DELETE FROM products WHERE product_id = ?1
                AND NOT EXISTS (SELECT 1 FROM devices WHERE product_id = ?1)",
        )
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 1 {
            return Ok(DeleteProduct::Deleted);
        }
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM products WHERE product_id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(if exists.is_some() {
            DeleteProduct::HasDevices
        } else {
            DeleteProduct::NotFound
        })
    }

    async fn update_product_registration(
        &self,
        id: &ProductId,
        register_type: i64,
        register_limit: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE products SET register_type = ?, register_limit = ? WHERE product_id = ?",
        )
        .bind(register_type)
        .bind(register_limit)
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_device(&self, d: &DeviceRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO devices (product_id, device_name, psk, cert_pem, enabled, online,
                first_online_at, login_at, last_offline_at, client_ip, log_level,
                firmware_version, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(d.product_id.as_str())
        .bind(d.name.as_str())
        .bind(d.psk.as_ref().map(|p| p.expose_secret()))
        .bind(d.cert_pem.as_deref())
        .bind(d.enabled)
        .bind(d.online)
        .bind(d.first_online_at)
        .bind(d.login_at)
        .bind(d.last_offline_at)
        .bind(d.client_ip.as_deref())
        .bind(d.log_level)
        .bind(&d.firmware_version)
        .bind(d.created_at)
        .bind(d.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or_backend(e, |_| "device"))?;
        Ok(())
    }

    async fn device(&self, product: &ProductId, name: &DeviceName) -> Result<Option<DeviceRecord>> {
        sqlx::query("SELECT * FROM devices WHERE product_id = ? AND device_name = ?")
            .bind(product.as_str())
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(rows::device)
            .transpose()
    }

    async fn list_devices(
        &self,
        product: &ProductId,
        filter: &DeviceFilter,
        page: Page,
    ) -> Result<Paged<DeviceRecord>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM devices");
        Self::push_device_filter(&mut count, product.as_str(), filter);
        let total: i64 = count
            .build_query_scalar()
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let mut select = QueryBuilder::<Sqlite>::new("SELECT * FROM devices");
        Self::push_device_filter(&mut select, product.as_str(), filter);
        select
            .push(" ORDER BY created_at, seq LIMIT ")
            .push_bind(to_i64(page.limit))
            .push(" OFFSET ")
            .push_bind(to_i64(page.offset));
        let rows = select.build().fetch_all(&mut *tx).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Paged {
            total: u64::try_from(total).unwrap_or(0),
            items: rows.iter().map(rows::device).collect::<Result<_>>()?,
        })
    }

    async fn delete_device(&self, product: &ProductId, name: &DeviceName) -> Result<bool> {
        let done = sqlx::query("DELETE FROM devices WHERE product_id = ? AND device_name = ?")
            .bind(product.as_str())
            .bind(name.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_devices_enabled(
        &self,
        product: &ProductId,
        names: &[DeviceName],
        enabled: bool,
    ) -> Result<Vec<DeviceName>> {
        let now = unix_now();
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let mut missing = Vec::new();
        for name in names {
            let done = sqlx::query(
                "UPDATE devices SET enabled = ?, updated_at = ?
                 WHERE product_id = ? AND device_name = ?",
            )
            .bind(enabled)
            .bind(now)
            .bind(product.as_str())
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if done.rows_affected() == 0 {
                missing.push(name.clone());
            }
        }
        if missing.is_empty() {
            tx.commit().await.map_err(backend)?;
        } else {
            tx.rollback().await.map_err(backend)?;
        }
        Ok(missing)
    }

    async fn update_device_psk(
        &self,
        product: &ProductId,
        name: &DeviceName,
        psk_base64: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE devices SET psk = ?, updated_at = ? WHERE product_id = ? AND device_name = ?",
        )
        .bind(psk_base64)
        .bind(unix_now())
        .bind(product.as_str())
        .bind(name.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn device_connected(
        &self,
        product: &ProductId,
        name: &DeviceName,
        client_ip: &str,
        at: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE devices SET online = 1, login_at = ?1, client_ip = ?2,
                first_online_at = COALESCE(first_online_at, ?1), updated_at = ?1
             WHERE product_id = ?3 AND device_name = ?4",
        )
        .bind(at)
        .bind(client_ip)
        .bind(product.as_str())
        .bind(name.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn device_disconnected(
        &self,
        product: &ProductId,
        name: &DeviceName,
        at: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE devices SET online = 0, last_offline_at = ?1, updated_at = ?1
             WHERE product_id = ?2 AND device_name = ?3",
        )
        .bind(at)
        .bind(product.as_str())
        .bind(name.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn reset_device_state(&self, product: &ProductId, name: &DeviceName) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE devices SET online = 0, first_online_at = NULL, login_at = NULL,
                last_offline_at = NULL, client_ip = NULL, updated_at = ?
             WHERE product_id = ? AND device_name = ?",
        )
        .bind(unix_now())
        .bind(product.as_str())
        .bind(name.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_topic_policy(&self, p: &TopicPolicyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO topic_policies (product_id, suffix, privilege, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(p.product_id.as_str())
        .bind(&p.suffix)
        .bind(p.privilege)
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or_backend(e, |_| "topic policy"))?;
        Ok(())
    }

    async fn update_topic_policy(
        &self,
        product: &ProductId,
        old_suffix: &str,
        new_suffix: &str,
        privilege: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE topic_policies SET suffix = ?, privilege = ?, updated_at = ?
             WHERE product_id = ? AND suffix = ?",
        )
        .bind(new_suffix)
        .bind(privilege)
        .bind(unix_now())
        .bind(product.as_str())
        .bind(old_suffix)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or_backend(e, |_| "topic policy"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_topic_policies(&self, product: &ProductId) -> Result<Vec<TopicPolicyRecord>> {
        sqlx::query("SELECT * FROM topic_policies WHERE product_id = ? ORDER BY suffix")
            .bind(product.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(rows::topic_policy)
            .collect()
    }

    async fn upsert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (secret_id, secret_key, origin, description, created_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (secret_id) DO UPDATE SET
                secret_key = excluded.secret_key, origin = excluded.origin,
                description = excluded.description",
        )
        .bind(&key.secret_id)
        .bind(key.secret_key.expose_secret())
        .bind(key.origin.as_str())
        .bind(&key.description)
        .bind(key.created_at)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn api_key(&self, secret_id: &str) -> Result<Option<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys WHERE secret_id = ?")
            .bind(secret_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(rows::api_key)
            .transpose()
    }

    async fn generated_api_key(&self) -> Result<Option<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys WHERE origin = 'generated' ORDER BY created_at, secret_id LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(rows::api_key)
            .transpose()
    }

    async fn insert_topic_rule(&self, rule: &TopicRuleRecord) -> Result<()> {
        self.insert_rule(rule).await
    }

    async fn topic_rule(&self, name: &str) -> Result<Option<TopicRuleRecord>> {
        self.rule(name).await
    }

    async fn list_topic_rules(&self, page: Page) -> Result<Paged<TopicRuleRecord>> {
        self.list_rules(page).await
    }

    async fn all_topic_rules(&self) -> Result<Vec<TopicRuleRecord>> {
        self.all_rules().await
    }

    async fn replace_topic_rule(&self, name: &str, change: &TopicRuleChange) -> Result<bool> {
        self.replace_rule(name, change).await
    }

    async fn set_topic_rule_disabled(&self, name: &str, disabled: bool, at: i64) -> Result<bool> {
        self.set_rule_disabled(name, disabled, at).await
    }

    async fn delete_topic_rule(&self, name: &str) -> Result<bool> {
        self.delete_rule(name).await
    }

    async fn insert_firmware(&self, firmware: &FirmwareRecord) -> Result<()> {
        self.insert_fw(firmware).await
    }

    async fn firmware(&self, product: &ProductId, version: &str) -> Result<Option<FirmwareRecord>> {
        self.get_fw(product, version).await
    }

    async fn list_firmwares(
        &self,
        product: Option<&ProductId>,
        page: Page,
    ) -> Result<Paged<FirmwareRecord>> {
        self.list_fw(product, page).await
    }

    async fn edit_firmware(&self, firmware: &FirmwareRecord) -> Result<bool> {
        self.edit_fw(firmware).await
    }

    async fn set_device_firmware_version(
        &self,
        product: &ProductId,
        name: &DeviceName,
        version: &str,
        at: i64,
    ) -> Result<bool> {
        self.device_fw_version(product, name, version, at).await
    }

    async fn create_firmware_task(
        &self,
        task: &FirmwareTaskRecord,
        devices: &[TaskDeviceRecord],
    ) -> Result<i64> {
        self.create_task(task, devices).await
    }

    async fn firmware_task(&self, task_id: i64) -> Result<Option<FirmwareTaskRecord>> {
        self.get_task(task_id).await
    }

    async fn list_firmware_tasks(
        &self,
        product: &ProductId,
        version: &str,
        page: Page,
    ) -> Result<Paged<FirmwareTaskRecord>> {
        self.list_tasks(product, version, page).await
    }

    async fn task_devices(
        &self,
        product: &ProductId,
        filter: &TaskDeviceFilter,
        page: Page,
    ) -> Result<Paged<TaskDeviceRecord>> {
        self.list_task_devices(product, filter, page).await
    }

    async fn active_task_device(
        &self,
        product: &ProductId,
        name: &DeviceName,
    ) -> Result<Option<TaskDeviceRecord>> {
        self.active_entry(product, name).await
    }

    async fn update_task_device(&self, entry: &TaskDeviceRecord, from: &[i64]) -> Result<bool> {
        self.update_entry(entry, from).await
    }

    async fn time_out_task_devices(&self, now: i64) -> Result<u64> {
        self.time_out_entries(now).await
    }

    async fn task_status_counts(
        &self,
        product: &ProductId,
        version: &str,
        task_id: Option<i64>,
    ) -> Result<Vec<(i64, i64)>> {
        self.status_counts(product, version, task_id).await
    }

    async fn bind_sub_device(
        &self,
        gateway: &DeviceId,
        sub: &DeviceId,
        limit: i64,
        at: i64,
    ) -> Result<Bound> {
        self.bind(gateway, sub, limit, at).await
    }

    async fn unbind_sub_device(&self, gateway: &DeviceId, sub: &DeviceId) -> Result<bool> {
        self.unbind(gateway, sub).await
    }

    async fn sub_devices(
        &self,
        gateway: &DeviceId,
        product: Option<&ProductId>,
        page: Page,
    ) -> Result<Paged<DeviceId>> {
        self.bound(gateway, product, page).await
    }

    async fn gateway_of(&self, sub: &DeviceId) -> Result<Option<DeviceId>> {
        self.binding_of(sub).await
    }

    async fn insert_group(&self, group: &GroupRecord) -> Result<()> {
        self.create_group(group).await
    }

    async fn delete_group(&self, name: &str) -> Result<bool> {
        self.remove_group(name).await
    }

    async fn group(&self, name: &str) -> Result<Option<GroupRecord>> {
        self.get_group(name).await
    }

    async fn list_groups(&self, page: Page) -> Result<Paged<GroupRecord>> {
        self.list_group_records(page).await
    }

    async fn add_group_devices(&self, name: &str, devices: &[DeviceId]) -> Result<bool> {
        self.add_members(name, devices).await
    }

    async fn remove_group_devices(&self, name: &str, devices: &[DeviceId]) -> Result<u64> {
        self.remove_members(name, devices).await
    }

    async fn group_devices(
        &self,
        name: &str,
        product: Option<&ProductId>,
        page: Page,
    ) -> Result<Paged<DeviceId>> {
        self.members(name, product, page).await
    }

    async fn register_device(
        &self,
        product: &ProductId,
        name: &DeviceName,
        psk: Option<&str>,
        cert_pem: Option<&str>,
        limit: i64,
        at: i64,
    ) -> Result<Registered> {
        self.register(product, name, psk, cert_pem, limit, at).await
    }

    async fn shadow(&self, product: &ProductId, name: &DeviceName) -> Result<Option<ShadowRecord>> {
        self.get_shadow(product, name).await
    }

    async fn put_shadow(&self, shadow: &ShadowRecord, expected: i64) -> Result<bool> {
        self.write_shadow(shadow, expected).await
    }

    async fn delete_shadow(&self, product: &ProductId, name: &DeviceName) -> Result<bool> {
        self.remove_shadow(product, name).await
    }

    async fn set_device_log_level(
        &self,
        product: &ProductId,
        name: &DeviceName,
        level: i64,
    ) -> Result<bool> {
        self.log_level(product, name, level).await
    }
}
