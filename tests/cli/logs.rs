//! `eddy logs query`: SQL over the device logs through QueryDeviceLogs.

use crate::support::{Hub, workdir};
use crate::{manage, ok, stderr};

#[test]
fn logs_query_prints_rows_and_refuses_writes() {
    let dir = workdir();
    let hub = Hub::start(dir.path());
    let out = ok(manage(
        &hub,
        &[
            "logs",
            "query",
            "SELECT 40 + 2 AS answer, COUNT(*) AS n FROM logs",
        ],
    ));
    assert!(
        out.contains("answer") && out.contains("42") && out.contains("1 row(s)"),
        "{out}"
    );
    let json = ok(manage(
        &hub,
        &[
            "logs",
            "query",
            "SELECT scene FROM logs",
            "--since",
            "0",
            "--json",
        ],
    ));
    assert!(json.contains("\"Rows\""), "{json}");
    let refused = manage(&hub, &["logs", "query", "DROP TABLE logs"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("InvalidParameterValue"),
        "{}",
        stderr(&refused)
    );
}
