//! Dynamic registration in PostgreSQL: the query behind `Store::register_device`.

use eddy_core::{DeviceName, ProductId};

use crate::rows::backend;
use crate::{Registered, Result};

use super::PgStore;

impl PgStore {
    pub(super) async fn register(
        &self,
        product: &ProductId,
        name: &DeviceName,
        psk: Option<&str>,
        cert_pem: Option<&str>,
        limit: i64,
        at: i64,
    ) -> Result<Registered> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Registrations of one product take turns, so two cannot both pass the limit.
        sqlx::query("SELECT 1 FROM products WHERE product_id = $1 FOR UPDATE")
            .bind(product.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let done = sqlx::query(
            "UPDATE devices SET psk = $1, cert_pem = $2, registered_at = $3, updated_at = $4
             WHERE product_id = $5 AND device_name = $6 AND first_online_at IS NULL
               AND (registered_at IS NOT NULL
                    OR (SELECT COUNT(*) FROM devices
                        WHERE product_id = $7 AND registered_at IS NOT NULL) < $8)",
        )
        .bind(psk)
        .bind(cert_pem)
        .bind(at)
        .bind(at)
        .bind(product.as_str())
        .bind(name.as_str())
        .bind(product.as_str())
        .bind(limit)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let outcome = if done.rows_affected() == 1 {
            Registered::Done
        } else {
            let row: Option<(Option<i64>,)> = sqlx::query_as(
                "SELECT first_online_at FROM devices WHERE product_id = $1 AND device_name = $2",
            )
            .bind(product.as_str())
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            Registered::refused(row)
        };
        tx.commit().await.map_err(backend)?;
        Ok(outcome)
    }
}
