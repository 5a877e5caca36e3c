//! Device shadows and per-device settings in PostgreSQL: the queries behind the `Store`
//! methods of the same names.

use eddy_core::time::unix_now;
use eddy_core::{DeviceName, ProductId};

use crate::rows::{self, backend};
use crate::{Result, ShadowRecord};

use super::PgStore;

impl PgStore {
    pub(super) async fn get_shadow(
        &self,
        product: &ProductId,
        name: &DeviceName,
    ) -> Result<Option<ShadowRecord>> {
        sqlx::query("SELECT * FROM device_shadows WHERE product_id = $1 AND device_name = $2")
            .bind(product.as_str())
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(rows::shadow)
            .transpose()
    }

    pub(super) async fn write_shadow(&self, s: &ShadowRecord, expected: i64) -> Result<bool> {
        let done = if expected == 0 {
            sqlx::query(
                "INSERT INTO device_shadows (product_id, device_name, reported, desired, version,
                    updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (product_id, device_name) DO NOTHING",
            )
            .bind(s.product_id.as_str())
            .bind(s.name.as_str())
            .bind(&s.reported)
            .bind(&s.desired)
            .bind(s.version)
            .bind(s.updated_at_ms)
            .execute(&self.pool)
            .await
        } else {
            sqlx::query(
                "UPDATE device_shadows SET reported = $1, desired = $2, version = $3, updated_at = $4
                 WHERE product_id = $5 AND device_name = $6 AND version = $7",
            )
            .bind(&s.reported)
            .bind(&s.desired)
            .bind(s.version)
            .bind(s.updated_at_ms)
            .bind(s.product_id.as_str())
            .bind(s.name.as_str())
            .bind(expected)
            .execute(&self.pool)
            .await
        };
        Ok(done.map_err(backend)?.rows_affected() == 1)
    }

    pub(super) async fn remove_shadow(
        &self,
        product: &ProductId,
        name: &DeviceName,
    ) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM device_shadows WHERE product_id = $1 AND device_name = $2")
                .bind(product.as_str())
                .bind(name.as_str())
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn log_level(
        &self,
        product: &ProductId,
        name: &DeviceName,
        level: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE devices SET log_level = $1, updated_at = $2 WHERE product_id = $3 AND device_name = $4",
        )
        .bind(level)
        .bind(unix_now())
        .bind(product.as_str())
        .bind(name.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}
