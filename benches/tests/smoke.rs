//! A few seconds of the load generator against an in-process broker, so the harness never
//! rots (issue G). Figures are never asserted; only that every scenario runs, reports
//! JSON, and that its count adds up — and that QoS 1/2 through Eddy lose nothing.

#![allow(clippy::unwrap_used, clippy::panic)]

// The broker tests' harness: a Broker served on its own, admitting anonymous clients.
#[path = "../../engine/broker/tests/common/mod.rs"]
#[allow(dead_code)] // STEP is for the broker tests
mod common;

use serde_json::Value;

async fn bench(port: u16, args: &[&str]) -> Value {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_eddy-bench"))
        .args(["--port", &port.to_string(), "--json"])
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_scenario_runs_and_its_count_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = common::open_broker(dir.path()).await;
    let port = addr.port();
    let pid = std::process::id().to_string();

    for (scenario, qos, json) in [
        ("fan-in", "1", false),
        ("p2p", "0", true),
        ("fan-out", "1", false),
        ("p2p", "2", false),
    ] {
        let mut args = vec![
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
            "--broker-pid",
            &pid,
        ];
        if json {
            args.push("--json-payload");
        }
        let report = bench(port, &args).await;
        assert!(report["sent"].as_u64().unwrap() > 0, "{report}");
        assert!(report["latency_ms"]["p99"].is_number(), "{report}");
        assert!(report["broker_rss_kb"].as_u64().unwrap() > 0, "{report}");
        // Every expected delivery is received or counted lost; nothing else arrives.
        assert_eq!(report["count_check"], "ok", "{report}");
        assert_eq!(
            report["expected"].as_u64(),
            Some(report["received"].as_u64().unwrap() + report["lost"].as_u64().unwrap()),
            "{report}"
        );
        if qos != "0" {
            assert_eq!(
                report["lost"], 0,
                "QoS {qos} through Eddy loses nothing: {report}"
            );
            assert_eq!(report["duplicates"], 0, "{report}");
        }
    }

    let storm = bench(
        port,
        &[
            "--scenario",
            "connect",
            "--clients",
            "2",
            "--duration",
            "1s",
        ],
    )
    .await;
    assert!(storm["connected"].as_u64().unwrap() > 0, "{storm}");
    assert_eq!(storm["failed"], 0, "{storm}");

    let idle = bench(
        port,
        &[
            "--scenario",
            "idle",
            "--clients",
            "50",
            "--spread-sources",
            "--duration",
            "0s",
            "--broker-pid",
            &pid,
        ],
    )
    .await;
    assert_eq!(idle["open"], 50, "{idle}");
    assert!(idle["broker_bytes_per_connection"].is_number(), "{idle}");
}
