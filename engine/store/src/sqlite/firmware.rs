//! Firmware and update tasks in SQLite: the queries behind the `Store` methods of the
//! same names.

use eddy_core::{DeviceName, ProductId};

use crate::rows::{self, backend, to_i64};
use crate::{
    FirmwareRecord, FirmwareTaskRecord, Page, Paged, Result, StoreError, TaskDeviceFilter,
    TaskDeviceRecord,
};

use super::{SqliteStore, conflict_or_backend};

/// Task entries that have not ended for their device.
const ACTIVE: &str = "status BETWEEN 1 AND 4";

impl SqliteStore {
    pub(super) async fn insert_fw(&self, f: &FirmwareRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO firmwares (product_id, version, name, description, user_defined, md5,
                size, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(f.product_id.as_str())
        .bind(&f.version)
        .bind(&f.name)
        .bind(&f.description)
        .bind(&f.user_defined)
        .bind(&f.md5)
        .bind(f.size)
        .bind(f.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or_backend(e, |_| "firmware"))?;
        Ok(())
    }

    pub(super) async fn get_fw(
        &self,
        product: &ProductId,
        version: &str,
    ) -> Result<Option<FirmwareRecord>> {
        sqlx::query("SELECT * FROM firmwares WHERE product_id = ? AND version = ?")
            .bind(product.as_str())
            .bind(version)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(rows::firmware)
            .transpose()
    }

    pub(super) async fn list_fw(
        &self,
        product: Option<&ProductId>,
        page: Page,
    ) -> Result<Paged<FirmwareRecord>> {
        let product = product.map(ProductId::as_str);
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM firmwares WHERE ? IS NULL OR product_id = ?")
                .bind(product)
                .bind(product)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        let rows = sqlx::query(
            "SELECT * FROM firmwares WHERE ? IS NULL OR product_id = ?
             ORDER BY created_at DESC, product_id, version LIMIT ? OFFSET ?",
        )
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
            items: rows.iter().map(rows::firmware).collect::<Result<_>>()?,
        })
    }

    pub(super) async fn edit_fw(&self, f: &FirmwareRecord) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE firmwares SET name = ?, description = ?, user_defined = ?
             WHERE product_id = ? AND version = ?",
        )
        .bind(&f.name)
        .bind(&f.description)
        .bind(&f.user_defined)
        .bind(f.product_id.as_str())
        .bind(&f.version)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn device_fw_version(
        &self,
        product: &ProductId,
        name: &DeviceName,
        version: &str,
        at: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE devices SET firmware_version = ?, updated_at = ?
             WHERE product_id = ? AND device_name = ?",
        )
        .bind(version)
        .bind(at)
        .bind(product.as_str())
        .bind(name.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn create_task(
        &self,
        t: &FirmwareTaskRecord,
        devices: &[TaskDeviceRecord],
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        for d in devices {
            let busy: Option<i64> = sqlx::query_scalar(
                "SELECT task_id FROM firmware_task_devices
                 WHERE product_id = ? AND device_name = ? AND status BETWEEN 1 AND 4 LIMIT 1",
            )
            .bind(t.product_id.as_str())
            .bind(d.device_name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            if busy.is_some() {
                return Err(StoreError::Conflict {
                    what: "device in an update task",
                });
            }
        }
        let task_id: i64 = sqlx::query_scalar(
            "INSERT INTO firmware_tasks (product_id, version, original_version, upgrade_mode,
                task_type, timeout_secs, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING task_id",
        )
        .bind(t.product_id.as_str())
        .bind(&t.version)
        .bind(&t.original_version)
        .bind(&t.upgrade_mode)
        .bind(t.task_type)
        .bind(t.timeout_secs)
        .bind(t.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        for d in devices {
            sqlx::query(
                "INSERT INTO firmware_task_devices (task_id, product_id, device_name, status,
                    percent, retcode, message, ori_version, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(task_id)
            .bind(d.product_id.as_str())
            .bind(d.device_name.as_str())
            .bind(d.status)
            .bind(d.percent)
            .bind(d.retcode)
            .bind(&d.message)
            .bind(&d.ori_version)
            .bind(d.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or_backend(e, |_| "device in an update task"))?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(task_id)
    }

    pub(super) async fn get_task(&self, task_id: i64) -> Result<Option<FirmwareTaskRecord>> {
        sqlx::query("SELECT * FROM firmware_tasks WHERE task_id = ?")
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(rows::firmware_task)
            .transpose()
    }

    pub(super) async fn list_tasks(
        &self,
        product: &ProductId,
        version: &str,
        page: Page,
    ) -> Result<Paged<FirmwareTaskRecord>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM firmware_tasks WHERE product_id = ? AND version = ?",
        )
        .bind(product.as_str())
        .bind(version)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let rows = sqlx::query(
            "SELECT * FROM firmware_tasks WHERE product_id = ? AND version = ?
             ORDER BY task_id DESC LIMIT ? OFFSET ?",
        )
        .bind(product.as_str())
        .bind(version)
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
                .map(rows::firmware_task)
                .collect::<Result<_>>()?,
        })
    }

    pub(super) async fn list_task_devices(
        &self,
        product: &ProductId,
        f: &TaskDeviceFilter,
        page: Page,
    ) -> Result<Paged<TaskDeviceRecord>> {
        let name = f.device_name.as_ref().map(DeviceName::as_str);
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM firmware_task_devices d JOIN firmware_tasks t USING (task_id)
             WHERE d.product_id = ? AND (? IS NULL OR t.version = ?)
               AND (? IS NULL OR d.task_id = ?) AND (? IS NULL OR d.device_name = ?)",
        )
        .bind(product.as_str())
        .bind(&f.version)
        .bind(&f.version)
        .bind(f.task_id)
        .bind(f.task_id)
        .bind(name)
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let rows = sqlx::query(
            "SELECT d.* FROM firmware_task_devices d JOIN firmware_tasks t USING (task_id)
             WHERE d.product_id = ? AND (? IS NULL OR t.version = ?)
               AND (? IS NULL OR d.task_id = ?) AND (? IS NULL OR d.device_name = ?)
             ORDER BY d.task_id, d.device_name LIMIT ? OFFSET ?",
        )
        .bind(product.as_str())
        .bind(&f.version)
        .bind(&f.version)
        .bind(f.task_id)
        .bind(f.task_id)
        .bind(name)
        .bind(name)
        .bind(to_i64(page.limit))
        .bind(to_i64(page.offset))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Paged {
            total: u64::try_from(total).unwrap_or(0),
            items: rows.iter().map(rows::task_device).collect::<Result<_>>()?,
        })
    }

    pub(super) async fn active_entry(
        &self,
        product: &ProductId,
        name: &DeviceName,
    ) -> Result<Option<TaskDeviceRecord>> {
        sqlx::query(&format!(
            "SELECT * FROM firmware_task_devices
             WHERE product_id = ? AND device_name = ? AND {ACTIVE}
             ORDER BY task_id DESC LIMIT 1"
        ))
        .bind(product.as_str())
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .as_ref()
        .map(rows::task_device)
        .transpose()
    }

    pub(super) async fn update_entry(&self, e: &TaskDeviceRecord, from: &[i64]) -> Result<bool> {
        // `from` is a handful of status numbers, written into the statement as such.
        let from = from
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if from.is_empty() {
            return Ok(false);
        }
        let done = sqlx::query(&format!(
            "UPDATE firmware_task_devices SET status = ?, percent = ?, retcode = ?, message = ?,
                updated_at = ?
             WHERE task_id = ? AND product_id = ? AND device_name = ? AND status IN ({from})"
        ))
        .bind(e.status)
        .bind(e.percent)
        .bind(e.retcode)
        .bind(&e.message)
        .bind(e.updated_at)
        .bind(e.task_id)
        .bind(e.product_id.as_str())
        .bind(e.device_name.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn time_out_entries(&self, now: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE firmware_task_devices SET status = 10, updated_at = ?
             WHERE status BETWEEN 2 AND 4
               AND updated_at + (SELECT t.timeout_secs FROM firmware_tasks t
                                 WHERE t.task_id = firmware_task_devices.task_id) < ?",
        )
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }

    pub(super) async fn status_counts(
        &self,
        product: &ProductId,
        version: &str,
        task_id: Option<i64>,
    ) -> Result<Vec<(i64, i64)>> {
        sqlx::query_as(
            "SELECT d.status, COUNT(*) FROM firmware_task_devices d
             JOIN firmware_tasks t USING (task_id)
             WHERE t.product_id = ? AND t.version = ? AND (? IS NULL OR d.task_id = ?)
             GROUP BY d.status ORDER BY d.status",
        )
        .bind(product.as_str())
        .bind(version)
        .bind(task_id)
        .bind(task_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }
}
