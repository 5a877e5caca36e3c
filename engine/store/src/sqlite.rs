//! The embedded SQLite store.
//!
//! One database file under the data dir, in WAL mode with `synchronous=FULL` so that a
//! committed write survives a crash of the process (and of the machine). Migrations are
//! embedded from `migrations/sqlite/` and applied on open.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use eddy_core::secret::{ExposeSecret, secret};
use eddy_core::time::unix_now;
use eddy_core::{DeviceName, EncryptionType, ProductId, ProductName};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::{
    ApiKeyOrigin, ApiKeyRecord, CaRecord, DeleteProduct, DeviceFilter, DeviceRecord, Page, Paged,
    ProductRecord, Result, Store, StoreError, TopicPolicyRecord,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite behind [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn backend(err: sqlx::Error) -> StoreError {
    StoreError::Backend(err)
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

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn like_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('%');
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
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

    fn product_from_row(row: &SqliteRow) -> Result<ProductRecord> {
        let id: String = row.try_get("product_id").map_err(backend)?;
        let name: String = row.try_get("product_name").map_err(backend)?;
        let encryption: i64 = row.try_get("encryption_type").map_err(backend)?;
        let ca_cert: Option<String> = row.try_get("ca_cert_pem").map_err(backend)?;
        let ca_key: Option<String> = row.try_get("ca_key_pem").map_err(backend)?;
        let secret_value: String = row.try_get("product_secret").map_err(backend)?;
        Ok(ProductRecord {
            id: ProductId::parse(&id).map_err(corrupt)?,
            name: ProductName::parse(&name).map_err(corrupt)?,
            description: row.try_get("description").map_err(backend)?,
            encryption: EncryptionType::from_code(&encryption.to_string()).map_err(corrupt)?,
            product_type: row.try_get("product_type").map_err(backend)?,
            format: row.try_get("format").map_err(backend)?,
            region: row.try_get("region").map_err(backend)?,
            register_type: row.try_get("register_type").map_err(backend)?,
            register_limit: row.try_get("register_limit").map_err(backend)?,
            secret: secret(secret_value),
            ca: match (ca_cert, ca_key) {
                (Some(cert_pem), Some(key_pem)) => Some(CaRecord {
                    cert_pem,
                    key_pem: secret(key_pem),
                }),
                _ => None,
            },
            created_at: row.try_get("created_at").map_err(backend)?,
        })
    }

    fn device_from_row(row: &SqliteRow) -> Result<DeviceRecord> {
        let product: String = row.try_get("product_id").map_err(backend)?;
        let name: String = row.try_get("device_name").map_err(backend)?;
        let psk: Option<String> = row.try_get("psk").map_err(backend)?;
        Ok(DeviceRecord {
            product_id: ProductId::parse(&product).map_err(corrupt)?,
            name: DeviceName::parse(&name).map_err(corrupt)?,
            psk: psk.map(secret),
            cert_pem: row.try_get("cert_pem").map_err(backend)?,
            enabled: row.try_get("enabled").map_err(backend)?,
            online: row.try_get("online").map_err(backend)?,
            first_online_at: row.try_get("first_online_at").map_err(backend)?,
            login_at: row.try_get("login_at").map_err(backend)?,
            last_offline_at: row.try_get("last_offline_at").map_err(backend)?,
            client_ip: row.try_get("client_ip").map_err(backend)?,
            log_level: row.try_get("log_level").map_err(backend)?,
            firmware_version: row.try_get("firmware_version").map_err(backend)?,
            created_at: row.try_get("created_at").map_err(backend)?,
            updated_at: row.try_get("updated_at").map_err(backend)?,
        })
    }

    fn policy_from_row(row: &SqliteRow) -> Result<TopicPolicyRecord> {
        let product: String = row.try_get("product_id").map_err(backend)?;
        Ok(TopicPolicyRecord {
            product_id: ProductId::parse(&product).map_err(corrupt)?,
            suffix: row.try_get("suffix").map_err(backend)?,
            privilege: row.try_get("privilege").map_err(backend)?,
            created_at: row.try_get("created_at").map_err(backend)?,
            updated_at: row.try_get("updated_at").map_err(backend)?,
        })
    }

    fn api_key_from_row(row: &SqliteRow) -> Result<ApiKeyRecord> {
        let origin: String = row.try_get("origin").map_err(backend)?;
        let key: String = row.try_get("secret_key").map_err(backend)?;
        Ok(ApiKeyRecord {
            secret_id: row.try_get("secret_id").map_err(backend)?,
            secret_key: secret(key),
            origin: ApiKeyOrigin::parse(&origin)
                .ok_or_else(|| corrupt(format!("unknown API key origin {origin:?}")))?,
            description: row.try_get("description").map_err(backend)?,
            created_at: row.try_get("created_at").map_err(backend)?,
        })
    }

    fn push_device_filter(qb: &mut QueryBuilder<'_, Sqlite>, product: &str, f: &DeviceFilter) {
        qb.push(" WHERE product_id = ")
            .push_bind(product.to_owned());
        if let Some(name) = &f.name_contains {
            qb.push(" AND device_name LIKE ")
                .push_bind(like_escape(name))
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
            .map(Self::product_from_row)
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
            items: rows
                .iter()
                .map(Self::product_from_row)
                .collect::<Result<_>>()?,
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
            .map(Self::device_from_row)
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
            items: rows
                .iter()
                .map(Self::device_from_row)
                .collect::<Result<_>>()?,
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
            .map(Self::policy_from_row)
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
            .map(Self::api_key_from_row)
            .transpose()
    }

    async fn generated_api_key(&self) -> Result<Option<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys WHERE origin = 'generated' ORDER BY created_at, secret_id LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(Self::api_key_from_row)
            .transpose()
    }
}
