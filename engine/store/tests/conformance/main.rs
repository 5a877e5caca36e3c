//! One behaviour, two backends: every check here runs against [`SqliteStore`] (a temp file)
//! and against [`PgStore`] (a real PostgreSQL server), so the two cannot drift apart.
//!
//! PostgreSQL comes from `EDDY_TEST_POSTGRES_URL`, an admin URL such as the one
//! `scripts/start-postgres.sh` prints. Each test creates its own database there (and drops
//! it afterwards, best-effort), so repeated and parallel runs never see each other's rows.
//! Without the variable the PostgreSQL tests say they were skipped, except under `CI=true`,
//! where they fail: a CI run that silently tested one backend would prove nothing.
//!
//! The test databases use an ICU `en-US` collation when the server offers it, because a
//! linguistic default collation is what most production servers have and it sorts `a`
//! before `B`; the store must still list in SQLite's bytewise order.

// This whole test binary is test code, but clippy only treats `#[test]` functions and
// `#[cfg(test)]` modules as such, not the helpers and checks the tests share.
#![allow(clippy::unwrap_used, clippy::panic)]

mod backends;
mod devices;
mod firmware;
mod fixtures;
mod gateway;
mod groups;
mod others;
mod products;
mod registration;
mod rules;
mod shadows;

use backends::{TestDatabase, run_check, sqlite_store, with_database};
use devices::*;
use eddy_store::PgStore;
use firmware::*;
use gateway::*;
use groups::*;
use others::*;
use products::*;
use registration::*;
use rules::*;
use shadows::*;

/// One test per check and backend: `sqlite::<check>` and `postgres::<check>`.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let (dir, store) = super::sqlite_store().await;
                    super::run_check(async move { super::$check(&store).await }, async {
                        drop(dir);
                    })
                    .await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(db) = super::TestDatabase::create().await else {
                        return;
                    };
                    let store = match super::PgStore::connect(&db.url()).await {
                        Ok(store) => store,
                        Err(e) => {
                            let name = db.name.clone();
                            db.drop_database().await;
                            panic!("PgStore::connect to test database {name}: {e}");
                        }
                    };
                    super::run_check(
                        async move { super::$check(&store).await },
                        db.drop_database(),
                    )
                    .await;
                }
            )*
        }
    };
}

conformance!(
    schema_version,
    products_crud,
    product_conflicts,
    product_pagination,
    devices_crud,
    device_conflicts,
    device_filters_and_pagination,
    set_devices_enabled,
    device_psk_and_reset,
    connection_state,
    delete_product_with_devices,
    topic_policies,
    api_keys,
    debug_hides_secrets,
    topic_rules,
    shadows,
    device_log_level,
    register_device,
    firmware_tasks,
    gateway_bindings,
    device_groups,
);

#[test]
fn with_database_replaces_only_the_path() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:55432/postgres", "x"),
        "postgres://postgres@127.0.0.1:55432/x"
    );
    assert_eq!(
        with_database(
            "postgres://u:p@h/db?sslmode=disable&application_name=a",
            "x"
        ),
        "postgres://u:p@h/x?sslmode=disable&application_name=a"
    );
    assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    assert_eq!(
        with_database("postgres://h?sslmode=disable", "x"),
        "postgres://h/x?sslmode=disable"
    );
}
