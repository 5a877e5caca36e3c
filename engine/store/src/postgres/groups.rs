//! Device groups in PostgreSQL: the queries behind the `Store` methods of the same names.

use eddy_core::{DeviceId, DeviceName, ProductId};

use crate::rows::{backend, corrupt, to_i64};
use crate::{GroupRecord, Page, Paged, Result};

use super::{PgStore, conflict_or_backend};

impl PgStore {
    pub(super) async fn create_group(&self, g: &GroupRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_groups (group_name, description, created_at) VALUES ($1, $2, $3)",
        )
        .bind(&g.name)
        .bind(&g.description)
        .bind(g.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or_backend(e, |_| "device group"))?;
        Ok(())
    }

    pub(super) async fn remove_group(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM device_groups WHERE group_name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn get_group(&self, name: &str) -> Result<Option<GroupRecord>> {
        let row: Option<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT g.group_name, g.description, g.created_at,
                    (SELECT COUNT(*) FROM device_group_members m WHERE m.group_name = g.group_name)
             FROM device_groups g WHERE g.group_name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(
            row.map(|(name, description, created_at, devices)| GroupRecord {
                name,
                description,
                created_at,
                devices,
            }),
        )
    }

    pub(super) async fn list_group_records(&self, page: Page) -> Result<Paged<GroupRecord>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM device_groups")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT g.group_name, g.description, g.created_at,
                    (SELECT COUNT(*) FROM device_group_members m WHERE m.group_name = g.group_name)
             FROM device_groups g ORDER BY g.group_name LIMIT $1 OFFSET $2",
        )
        .bind(to_i64(page.limit))
        .bind(to_i64(page.offset))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Paged {
            total: u64::try_from(total).unwrap_or(0),
            items: rows
                .into_iter()
                .map(|(name, description, created_at, devices)| GroupRecord {
                    name,
                    description,
                    created_at,
                    devices,
                })
                .collect(),
        })
    }

    pub(super) async fn add_members(&self, name: &str, devices: &[DeviceId]) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM device_groups WHERE group_name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if exists.is_none() {
            return Ok(false);
        }
        for d in devices {
            sqlx::query(
                "INSERT INTO device_group_members (group_name, product_id, device_name)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .bind(d.product_id.as_str())
            .bind(d.device_name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    pub(super) async fn remove_members(&self, name: &str, devices: &[DeviceId]) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let mut removed = 0;
        for d in devices {
            removed += sqlx::query(
                "DELETE FROM device_group_members
                 WHERE group_name = $1 AND product_id = $2 AND device_name = $3",
            )
            .bind(name)
            .bind(d.product_id.as_str())
            .bind(d.device_name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        }
        tx.commit().await.map_err(backend)?;
        Ok(removed)
    }

    pub(super) async fn members(
        &self,
        name: &str,
        product: Option<&ProductId>,
        page: Page,
    ) -> Result<Paged<DeviceId>> {
        let product = product.map(ProductId::as_str);
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM device_group_members
             WHERE group_name = $1 AND ($2::TEXT IS NULL OR product_id = $3)",
        )
        .bind(name)
        .bind(product)
        .bind(product)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT product_id, device_name FROM device_group_members
             WHERE group_name = $1 AND ($2::TEXT IS NULL OR product_id = $3)
             ORDER BY product_id, device_name LIMIT $4 OFFSET $5",
        )
        .bind(name)
        .bind(product)
        .bind(product)
        .bind(to_i64(page.limit))
        .bind(to_i64(page.offset))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let items = rows
            .iter()
            .map(|(p, d)| {
                Ok(DeviceId::new(
                    ProductId::parse(p).map_err(corrupt)?,
                    DeviceName::parse(d).map_err(corrupt)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Paged {
            total: u64::try_from(total).unwrap_or(0),
            items,
        })
    }
}
