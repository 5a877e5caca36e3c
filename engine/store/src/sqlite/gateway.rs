//! Gateway bindings in SQLite: the queries behind the `Store` methods of the same names.

use eddy_core::{DeviceId, DeviceName, ProductId};

use crate::rows::{backend, corrupt, to_i64};
use crate::{Bound, Page, Paged, Result};

use super::SqliteStore;

fn device_id(product: &str, name: &str) -> Result<DeviceId> {
    Ok(DeviceId::new(
        ProductId::parse(product).map_err(corrupt)?,
        DeviceName::parse(name).map_err(corrupt)?,
    ))
}

impl SqliteStore {
    pub(super) async fn bind(
        &self,
        gateway: &DeviceId,
        sub: &DeviceId,
        limit: i64,
        at: i64,
    ) -> Result<Bound> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let current: Option<(String, String)> = sqlx::query_as(
            "SELECT gateway_product_id, gateway_device_name FROM gateway_bindings
             WHERE product_id = ? AND device_name = ?",
        )
        .bind(sub.product_id.as_str())
        .bind(sub.device_name.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        if let Some((gp, gd)) = current {
            return Ok(if device_id(&gp, &gd)? == *gateway {
                Bound::Done
            } else {
                Bound::Elsewhere(device_id(&gp, &gd)?)
            });
        }
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM gateway_bindings
             WHERE gateway_product_id = ? AND gateway_device_name = ?",
        )
        .bind(gateway.product_id.as_str())
        .bind(gateway.device_name.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if count >= limit {
            return Ok(Bound::LimitReached);
        }
        let done = sqlx::query(
            "INSERT INTO gateway_bindings (product_id, device_name, gateway_product_id,
                gateway_device_name, bound_at)
             SELECT ?, ?, ?, ?, ?
             WHERE EXISTS (SELECT 1 FROM devices WHERE product_id = ? AND device_name = ?)
               AND EXISTS (SELECT 1 FROM devices WHERE product_id = ? AND device_name = ?)",
        )
        .bind(sub.product_id.as_str())
        .bind(sub.device_name.as_str())
        .bind(gateway.product_id.as_str())
        .bind(gateway.device_name.as_str())
        .bind(at)
        .bind(sub.product_id.as_str())
        .bind(sub.device_name.as_str())
        .bind(gateway.product_id.as_str())
        .bind(gateway.device_name.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(if done.rows_affected() == 1 {
            Bound::Done
        } else {
            Bound::NoDevice
        })
    }

    pub(super) async fn unbind(&self, gateway: &DeviceId, sub: &DeviceId) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM gateway_bindings
             WHERE product_id = ? AND device_name = ?
               AND gateway_product_id = ? AND gateway_device_name = ?",
        )
        .bind(sub.product_id.as_str())
        .bind(sub.device_name.as_str())
        .bind(gateway.product_id.as_str())
        .bind(gateway.device_name.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn bound(
        &self,
        gateway: &DeviceId,
        product: Option<&ProductId>,
        page: Page,
    ) -> Result<Paged<DeviceId>> {
        let product = product.map(ProductId::as_str);
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM gateway_bindings
             WHERE gateway_product_id = ? AND gateway_device_name = ?
               AND (? IS NULL OR product_id = ?)",
        )
        .bind(gateway.product_id.as_str())
        .bind(gateway.device_name.as_str())
        .bind(product)
        .bind(product)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT product_id, device_name FROM gateway_bindings
             WHERE gateway_product_id = ? AND gateway_device_name = ?
               AND (? IS NULL OR product_id = ?)
             ORDER BY product_id, device_name LIMIT ? OFFSET ?",
        )
        .bind(gateway.product_id.as_str())
        .bind(gateway.device_name.as_str())
        .bind(product)
        .bind(product)
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
                .map(|(p, d)| device_id(p, d))
                .collect::<Result<_>>()?,
        })
    }

    pub(super) async fn binding_of(&self, sub: &DeviceId) -> Result<Option<DeviceId>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT gateway_product_id, gateway_device_name FROM gateway_bindings
             WHERE product_id = ? AND device_name = ?",
        )
        .bind(sub.product_id.as_str())
        .bind(sub.device_name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(|(p, d)| device_id(&p, &d)).transpose()
    }
}
