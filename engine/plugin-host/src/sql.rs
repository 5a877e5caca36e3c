//! The `sql` connector: parameterised INSERT / UPDATE / DELETE statements on the one
//! database a destination's grants name (`sql-url`: `postgres://…` or `mysql://…`), on
//! the tables they list (`sql-tables`), every parameter row in one transaction.
//!
//! The statement is parsed (sqlparser, the parser DataFusion uses) in the database's
//! dialect before it runs: any other kind of statement, or one naming a table outside the
//! grants, is refused with `permission-denied`. Pools are shared per URL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sqlparser::ast::{Statement, visit_relations};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;

use crate::bindings::eddy::plugin::sql::Value;
use crate::bindings::eddy::plugin::types::ConnectorError;
use crate::grants::Grants;

/// One database's pool.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

/// The pools of every granted database, opened lazily on first use.
#[derive(Debug, Default)]
pub(crate) struct Pools(Mutex<HashMap<String, Pool>>);

impl Pools {
    fn get(&self, url: &str) -> Result<Pool, ConnectorError> {
        let mut pools = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(url) {
            return Ok(pool.clone());
        }
        let invalid = |e: sqlx::Error| ConnectorError::Invalid(format!("sql-url: {e}"));
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_lazy(url)
                    .map_err(invalid)?,
            )
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Pool::MySql(
                sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_lazy(&url.replacen("mariadb://", "mysql://", 1))
                    .map_err(invalid)?,
            )
        } else {
            return Err(ConnectorError::Invalid(
                "sql-url must start with postgres:// or mysql://".into(),
            ));
        };
        pools.insert(url.to_owned(), pool.clone());
        Ok(pool)
    }
}

/// Checks `statement` against the grants: one INSERT, UPDATE or DELETE naming only
/// granted tables.
pub(crate) fn check(
    statement: &str,
    grants: &Grants,
    destination: &str,
) -> Result<(), ConnectorError> {
    let Some(url) = &grants.sql_url else {
        return Err(ConnectorError::PermissionDenied(format!(
            "destination {destination} has no SQL grant"
        )));
    };
    let dialect: Box<dyn Dialect> = if url.starts_with("mysql") || url.starts_with("mariadb") {
        Box::new(MySqlDialect {})
    } else {
        Box::new(PostgreSqlDialect {})
    };
    let parsed = Parser::parse_sql(dialect.as_ref(), statement)
        .map_err(|e| ConnectorError::Invalid(format!("statement: {e}")))?;
    let [one] = parsed.as_slice() else {
        return Err(ConnectorError::Invalid(
            "exactly one statement, please".into(),
        ));
    };
    if !matches!(
        one,
        Statement::Insert(_) | Statement::Update { .. } | Statement::Delete(_)
    ) {
        return Err(ConnectorError::PermissionDenied(
            "only INSERT, UPDATE and DELETE statements may run".into(),
        ));
    }
    let mut outside = None;
    let _ = visit_relations(one, |relation| {
        let table = relation
            .0
            .last()
            .map(|part| part.to_string().trim_matches(['"', '`']).to_owned())
            .unwrap_or_default();
        if !grants
            .sql_tables
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&table))
        {
            outside = Some(table);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    match outside {
        Some(table) => Err(ConnectorError::PermissionDenied(format!(
            "destination {destination} may not write table {table:?}"
        ))),
        None => Ok(()),
    }
}

fn unavailable(e: sqlx::Error) -> ConnectorError {
    match e {
        sqlx::Error::Database(db) => ConnectorError::Invalid(db.to_string()),
        other => ConnectorError::Unavailable(other.to_string()),
    }
}

macro_rules! bind_all {
    ($query:expr, $row:expr) => {{
        let mut query = $query;
        for value in $row {
            query = match value {
                Value::Null => query.bind(None::<String>),
                Value::Boolean(b) => query.bind(*b),
                Value::Integer(i) => query.bind(*i),
                Value::Float(f) => query.bind(*f),
                Value::Text(s) => query.bind(s.as_str()),
                Value::Bytes(b) => query.bind(b.as_slice()),
            };
        }
        query
    }};
}

/// Runs `statement` once per row of `rows` on `pool`, in one transaction (the same code
/// for both pool types).
macro_rules! in_transaction {
    ($pool:expr, $statement:expr, $rows:expr) => {{
        let mut affected = 0;
        let mut tx = $pool.begin().await.map_err(unavailable)?;
        for row in $rows {
            let done = bind_all!(sqlx::query($statement), row)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            affected += done.rows_affected();
        }
        tx.commit().await.map_err(unavailable)?;
        affected
    }};
}

/// Runs `statement` once per row of `rows`, in one transaction; rows affected in all.
pub(crate) async fn execute(
    pools: &Pools,
    url: &str,
    statement: &str,
    rows: &[Vec<Value>],
) -> Result<u64, ConnectorError> {
    Ok(match pools.get(url)? {
        Pool::Postgres(pool) => in_transaction!(pool, statement, rows),
        Pool::MySql(pool) => in_transaction!(pool, statement, rows),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(url: &str) -> Grants {
        Grants {
            sql_url: Some(url.into()),
            sql_tables: vec!["readings".into()],
            ..Grants::default()
        }
    }

    #[test]
    fn only_writes_to_granted_tables_pass() {
        let pg = grants("postgres://x/db");
        assert!(check("INSERT INTO readings (a, b) VALUES ($1, $2)", &pg, "d").is_ok());
        assert!(check("INSERT INTO \"readings\" (a) VALUES ($1)", &pg, "d").is_ok());
        assert!(check("UPDATE readings SET a = $1 WHERE b = $2", &pg, "d").is_ok());
        assert!(check("DELETE FROM public.readings WHERE a = $1", &pg, "d").is_ok());
        let denied = |sql: &str, g: &Grants| {
            matches!(check(sql, g, "d"), Err(ConnectorError::PermissionDenied(_)))
        };
        assert!(denied("INSERT INTO secrets (a) VALUES ($1)", &pg));
        assert!(denied(
            "INSERT INTO readings (a) SELECT a FROM secrets",
            &pg
        ));
        assert!(denied("DROP TABLE readings", &pg));
        assert!(denied("SELECT * FROM readings", &pg));
        assert!(denied(
            "INSERT INTO readings (a) VALUES ($1)",
            &Grants::default()
        ));
        assert!(matches!(
            check("INSERT INTO readings VALUES (1); DROP TABLE x", &pg, "d"),
            Err(ConnectorError::Invalid(_))
        ));
        let my = grants("mysql://x/db");
        assert!(check("INSERT INTO `readings` (a) VALUES (?)", &my, "d").is_ok());
        assert!(denied("INSERT INTO other (a) VALUES (?)", &my));
    }
}
