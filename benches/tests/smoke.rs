//! A few seconds of the load generator against an in-process broker, so the harness never
//! rots (issue G). Figures are never asserted; only that it runs, reports JSON, and that
//! QoS 1 loses nothing.

#![allow(clippy::unwrap_used, clippy::panic)]

// The broker tests' harness: a Broker served on its own, admitting anonymous clients.
#[path = "../../engine/broker/tests/common/mod.rs"]
#[allow(dead_code)] // STEP is for the broker tests
mod common;

#[tokio::test(flavor = "multi_thread")]
async fn the_load_generator_runs_and_qos1_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = common::open_broker(dir.path()).await;
    let port = addr.port();

    for (scenario, qos) in [("fan-in", "1"), ("p2p", "0"), ("fan-out", "1")] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_eddy-bench"))
            .args([
                "--port",
                &port.to_string(),
                "--scenario",
                scenario,
                "--clients",
                "2",
                "--qos",
                qos,
                "--duration",
                "1s",
                "--drain",
                "60s",
                "--rate",
                "200",
                "--json",
            ])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(report["sent"].as_u64().unwrap() > 0, "{report}");
        assert!(report["latency_ms"]["p99"].is_number(), "{report}");
        if qos == "1" {
            assert_eq!(
                report["lost"], 0,
                "QoS 1 through Eddy loses nothing: {report}"
            );
        }
    }
}
