//! Tencent's `mysql` action (and Eddy's `postgres` in the same shape) end to end, against
//! the real PostgreSQL and MariaDB `scripts/test` starts: rows inserted through
//! `fieldpairs`, the database and tables granted by a `[[destinations]]` entry, a table
//! outside the grants refused into the dead letters.

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rumqttc::{Packet, QoS};
use serde_json::{Value, json};

use crate::{STEP, connected, fresh, next_incoming};

/// A database server URL from the environment, or `None` to skip outside CI.
fn server(var: &str, script: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{var} is not set but CI=true: start the server ({script})")
        }
        _ => {
            eprintln!("SQL destination e2e skipped: set {var} ({script} prints one)");
            None
        }
    }
}

fn run(mut command: Command) -> String {
    let out = command.output().expect("run the database client");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// PostgreSQL through psql on `url`.
fn psql(url: &str, sql: &str) -> String {
    let mut c = Command::new("psql");
    c.args([url, "-v", "ON_ERROR_STOP=1", "-q", "-t", "-A", "-c", sql]);
    run(c)
}

/// MariaDB through its client, on the server of `url` (mysql://user@host:port/db).
fn mariadb(url: &str, db: &str, sql: &str) -> String {
    let rest = url.trim_start_matches("mysql://");
    let (user, rest) = rest.split_once('@').unwrap();
    let host_port = rest.split('/').next().unwrap();
    let (host, port) = host_port.split_once(':').unwrap();
    let mut c = Command::new("mariadb");
    c.args([
        "--protocol=tcp",
        "-h",
        host,
        "-P",
        port,
        "-u",
        user,
        "-N",
        "-B",
        db,
        "-e",
        sql,
    ]);
    run(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_and_postgres_actions_insert_rows_through_fieldpairs() {
    let (Some(pg_admin), Some(my_admin)) = (
        server("EDDY_TEST_POSTGRES_URL", "scripts/start-postgres.sh"),
        server("EDDY_TEST_MYSQL_URL", "scripts/start-mariadb.sh"),
    ) else {
        return;
    };
    let table = "CREATE TABLE readings (dev VARCHAR(64), temp DOUBLE PRECISION, note TEXT)";
    let pg_db = unique("eddy_sql");
    psql(&pg_admin, &format!("CREATE DATABASE {pg_db}"));
    let pg_url = format!("{}/{pg_db}", pg_admin.rsplit_once('/').unwrap().0);
    psql(&pg_url, table);
    let my_db = unique("eddy_sql");
    mariadb(&my_admin, "mysql", &format!("CREATE DATABASE {my_db}"));
    mariadb(&my_admin, &my_db, table);
    mariadb(&my_admin, &my_db, "CREATE TABLE secrets (dev VARCHAR(64))");
    let my_url = format!("{}/{my_db}", my_admin.rsplit_once('/').unwrap().0);

    let tables = format!(
        r#"
[[destinations]]
name = "pgdb"
plugin = "builtin:postgres"
[destinations.grants]
sql-url = {pg_url:?}
sql-tables = ["readings"]

[[destinations]]
name = "mydb"
plugin = "builtin:mysql"
[destinations.grants]
sql-url = {my_url:?}
sql-tables = ["readings"]
"#
    );
    let (_dir, hub, api, pid, psk) = crate::hub_with_device(&tables, "sql").await;
    let pairs = json!([
        { "field": "dev", "value": "dev" },
        { "field": "temp", "value": "${temp}" },
        { "field": "note", "value": "note" },
    ]);
    let actions = json!([
        { "postgres": { "instanceid": "pgdb", "tablename": "readings", "fieldpairs": pairs } },
        { "mysql": { "instanceid": "mydb", "region": "ap-guangzhou", "dbname": my_db,
                     "tablename": "readings", "fieldpairs": pairs } },
    ]);
    let rule = |name: &str, actions: &Value| {
        json!({
            "RuleName": name,
            "TopicRulePayload": {
                "Sql": BASE64.encode(format!("SELECT deviceName() AS dev, temp, note FROM '{pid}/+/event'")),
                "Actions": actions.to_string(),
                "RuleDisabled": false,
            },
        })
    };
    api.call("CreateTopicRule", &rule("to_sql", &actions))
        .await
        .expect("CreateTopicRule");
    // A table outside the grants: permission denied, dead-lettered.
    let sneaky = json!([{ "mysql": { "instanceid": "mydb", "tablename": "secrets",
                                      "fieldpairs": [{ "field": "dev", "value": "dev" }] } }]);
    api.call("CreateTopicRule", &rule("to_secrets", &sneaky))
        .await
        .expect("CreateTopicRule");
    // An instance the hub does not have is refused when the rule is written.
    let unknown = json!([{ "postgres": { "instanceid": "nowhere", "tablename": "readings",
                                          "fieldpairs": pairs } }]);
    let refused = api
        .call("CreateTopicRule", &rule("nowhere", &unknown))
        .await;
    assert!(
        format!("{refused:?}").contains("no destination named"),
        "{refused:?}"
    );

    let (a, mut events) = connected(&hub, &fresh(&pid, "a", &psk)).await;
    for n in 0..20 {
        let body = json!({ "temp": 20.5 + n as f64, "note": format!("n{n}") }).to_string();
        a.publish(format!("{pid}/a/event"), QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
        loop {
            if let Packet::PubAck(_) = next_incoming(&mut events).await.unwrap() {
                break;
            }
        }
    }
    // Acknowledged means queued; the inserts follow. Wait for them, bounded.
    let deadline = Instant::now() + STEP;
    let count = "SELECT count(*) FROM readings";
    while psql(&pg_url, count) != "20" || mariadb(&my_admin, &my_db, count) != "20" {
        assert!(Instant::now() < deadline, "rows did not all arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sample = "SELECT dev, temp, note FROM readings WHERE note = 'n3'";
    assert_eq!(psql(&pg_url, sample), "a|23.5|n3");
    assert_eq!(mariadb(&my_admin, &my_db, sample), "a\t23.5\tn3");
    assert_eq!(
        mariadb(&my_admin, &my_db, "SELECT count(*) FROM secrets"),
        "0"
    );
    let listed = crate::dead_letters(&api, "rule/to_secrets/0", "the refused table").await;
    let error = listed["DeadLetters"][0]["Error"].as_str().unwrap();
    assert!(error.contains("may not write table"), "{error}");

    drop((a, hub));
    psql(
        &pg_admin,
        &format!("DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)"),
    );
    mariadb(
        &my_admin,
        "mysql",
        &format!("DROP DATABASE IF EXISTS {my_db}"),
    );
}
