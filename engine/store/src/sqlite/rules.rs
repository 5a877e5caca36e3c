//! Topic rules in SQLite: the queries behind the `Store` methods of the same names.

use crate::rows::{self, backend, to_i64};
use crate::{Page, Paged, Result, TopicRuleChange, TopicRuleRecord};

use super::{SqliteStore, conflict_or_backend};

impl SqliteStore {
    pub(super) async fn insert_rule(&self, r: &TopicRuleRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO topic_rules (rule_name, sql, actions, error_actions, description,
                disabled, created_at, modified_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.name)
        .bind(&r.sql)
        .bind(&r.actions)
        .bind(&r.error_actions)
        .bind(&r.description)
        .bind(r.disabled)
        .bind(r.created_at)
        .bind(r.modified_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or_backend(e, |_| "topic rule"))?;
        Ok(())
    }

    pub(super) async fn rule(&self, name: &str) -> Result<Option<TopicRuleRecord>> {
        sqlx::query("SELECT * FROM topic_rules WHERE rule_name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(rows::topic_rule)
            .transpose()
    }

    pub(super) async fn list_rules(&self, page: Page) -> Result<Paged<TopicRuleRecord>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM topic_rules")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let rows = sqlx::query(
            "SELECT * FROM topic_rules ORDER BY created_at, rule_name LIMIT ? OFFSET ?",
        )
        .bind(to_i64(page.limit))
        .bind(to_i64(page.offset))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Paged {
            total: u64::try_from(total).unwrap_or(0),
            items: rows.iter().map(rows::topic_rule).collect::<Result<_>>()?,
        })
    }

    pub(super) async fn all_rules(&self) -> Result<Vec<TopicRuleRecord>> {
        sqlx::query("SELECT * FROM topic_rules ORDER BY created_at, rule_name")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(rows::topic_rule)
            .collect()
    }

    pub(super) async fn replace_rule(&self, name: &str, c: &TopicRuleChange) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE topic_rules SET sql = ?, actions = ?, error_actions = ?, description = ?,
                disabled = COALESCE(?, disabled), modified_at = ?
             WHERE rule_name = ?",
        )
        .bind(&c.sql)
        .bind(&c.actions)
        .bind(&c.error_actions)
        .bind(&c.description)
        .bind(c.disabled)
        .bind(c.modified_at)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn set_rule_disabled(
        &self,
        name: &str,
        disabled: bool,
        at: i64,
    ) -> Result<bool> {
        let done =
            sqlx::query("UPDATE topic_rules SET disabled = ?, modified_at = ? WHERE rule_name = ?")
                .bind(disabled)
                .bind(at)
                .bind(name)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete_rule(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM topic_rules WHERE rule_name = ?")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}
