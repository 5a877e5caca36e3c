//! The two backends under test: a temp SQLite file, and a fresh PostgreSQL database.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::str::FromStr;
use std::sync::Once;

use eddy_store::SqliteStore;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::fixtures::*;

pub(crate) async fn sqlite_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("eddy.db"))
        .await
        .unwrap();
    (dir, store)
}

/// Writes straight to the process's stderr, which libtest does not capture, so the line
/// shows in a plain `cargo test` run.
pub(crate) fn notice(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The admin URL, or `None` (after saying so once) when PostgreSQL tests are skipped.
pub(crate) fn postgres_admin_url() -> Option<String> {
    static SKIP_NOTICE: Once = Once::new();
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if in_ci() => panic!(
            "{PG_URL_VAR} is not set but CI=true: the PostgreSQL conformance tests must run \
             in CI. Start a server with scripts/start-postgres.sh and export the line it prints."
        ),
        _ => {
            SKIP_NOTICE.call_once(|| {
                notice(&format!(
                    "conformance: PostgreSQL tests skipped: set {PG_URL_VAR} \
                     (scripts/start-postgres.sh prints one)"
                ));
            });
            None
        }
    }
}

/// `url` with its database (the path) replaced by `database`, query string kept.
pub(crate) fn with_database(url: &str, database: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let path_start = head[authority_start..]
        .find('/')
        .map_or(head.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &head[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A database of its own for one test, on the server behind the admin URL.
pub(crate) struct TestDatabase {
    pub(crate) admin_url: String,
    pub(crate) name: String,
}

impl TestDatabase {
    /// Creates the database; `None` when PostgreSQL tests are skipped.
    pub(crate) async fn create() -> Option<Self> {
        let admin_url = postgres_admin_url()?;
        // Unique across parallel tests (counter), processes (pid) and runs (random bits
        // from the standard library's per-process hash seed plus the clock).
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        let name = format!(
            "eddy_test_{}_{}_{:016x}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            hasher.finish()
        );
        let mut admin = admin_connect(&admin_url).await;
        // ICU en-US sorts "a" before "B": the store's listings must not depend on that.
        let icu = format!(
            "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
        );
        if let Err(icu_err) = admin_sql(&mut admin, &icu).await {
            static FALLBACK_NOTICE: Once = Once::new();
            FALLBACK_NOTICE.call_once(|| {
                notice(&format!(
                    "conformance: server cannot create ICU en-US databases ({icu_err}); \
                     using its default collation"
                ));
            });
            admin_sql(&mut admin, &format!("CREATE DATABASE \"{name}\""))
                .await
                .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        }
        let _ = admin.close().await;
        Some(Self { admin_url, name })
    }

    pub(crate) fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }

    /// Best-effort: a leftover `eddy_test_*` database is harmless, so failures only warn
    /// (a panic here would hide the outcome of the check that ran before).
    pub(crate) async fn drop_database(self) {
        let warn = |e: &str| {
            notice(&format!(
                "conformance: could not drop test database {}: {e}",
                self.name
            ));
        };
        let mut admin = match try_admin_connect(&self.admin_url).await {
            Ok(admin) => admin,
            Err(e) => return warn(&e),
        };
        // FORCE: the store's pool may still be closing its connections.
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = admin_sql(&mut admin, &sql).await {
            warn(&e);
        }
        let _ = admin.close().await;
    }
}

pub(crate) async fn try_admin_connect(admin_url: &str) -> Result<PgConnection, String> {
    let options = PgConnectOptions::from_str(admin_url)
        .map_err(|e| format!("{PG_URL_VAR} is not a valid PostgreSQL URL: {e}"))?;
    match tokio::time::timeout(ADMIN_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!(
            "cannot connect to {PG_URL_VAR} (is scripts/start-postgres.sh running?): {e}"
        )),
        Err(_) => Err(format!("timed out connecting to {PG_URL_VAR}")),
    }
}

pub(crate) async fn admin_connect(admin_url: &str) -> PgConnection {
    try_admin_connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) async fn admin_sql(admin: &mut PgConnection, sql: &str) -> Result<(), String> {
    match tokio::time::timeout(ADMIN_TIMEOUT, sqlx::raw_sql(sql).execute(&mut *admin)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {ADMIN_TIMEOUT:?}")),
    }
}

/// Runs `check` under [`CHECK_TIMEOUT`] in a task of its own, so that when it panics
/// `cleanup` still runs before the panic is passed on.
pub(crate) async fn run_check<F, C>(check: F, cleanup: C)
where
    F: Future<Output = ()> + Send + 'static,
    C: Future<Output = ()>,
{
    let outcome = tokio::spawn(tokio::time::timeout(CHECK_TIMEOUT, check)).await;
    cleanup.await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("check did not finish within {CHECK_TIMEOUT:?}"),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => panic!("check task failed: {join}"),
    }
}
