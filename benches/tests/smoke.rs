//! A few seconds of the load generator against an in-process broker, so the harness never
//! rots (issue G). Figures are never asserted; only that it runs, reports JSON, and that
//! QoS 1 loses nothing.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use eddy_broker::clients::{AclAction, AclRule, ClientRules, ClientsSettings, Permission};
use eddy_broker::{Broker, BrokerSettings, NoDevices};

#[tokio::test(flavor = "multi_thread")]
async fn the_load_generator_runs_and_qos1_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rules = ClientRules::new(ClientsSettings {
        enabled: true,
        anonymous: true,
        acl: vec![AclRule {
            permission: Permission::Allow,
            action: AclAction::All,
            username: None,
            client_id: None,
            topics: vec!["bench/#".into()],
        }],
        ..ClientsSettings::default()
    })
    .unwrap();
    let log = eddy_queue::Log::open(dir.path()).unwrap();
    let broker = Broker::new(BrokerSettings::default(), Arc::new(NoDevices), rules, &log)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(broker.serve(listener, std::future::pending()));

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
