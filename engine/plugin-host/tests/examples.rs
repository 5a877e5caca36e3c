//! The example destination plugins in `examples/plugins/` (Rust, Python, JavaScript) run
//! in the real host and behave alike: each publishes every row as
//! `{"id": <row id>, "by": <language>, "row": <row JSON or null>}`, QoS 1, to its `topic`.
//!
//! `examples/plugins/build.sh` builds them once per test binary (cargo, componentize-py,
//! jco). A missing tool fails these tests: they are never skipped.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use eddy_core::destination::{DeliveryError, Destination, Envelope};
use eddy_core::{QoS, TopicFilter};
use eddy_plugin_host::{Grants, HostSettings};
use serde_json::{Value, json};

mod common;
use common::{host, row};

/// Three JSON rows and one row that is not JSON (`json: false`, bytes as published).
fn envelope() -> Arc<Envelope> {
    let payloads: [(&[u8], bool); 4] = [
        (br#"{"k":"a","v":1}"#, true),
        (br#"{"k":"b","v":[1,2.5,"x"]}"#, true),
        (br#"{"nested":{"n":null,"t":true}}"#, true),
        (b"\x01\x02 not json", false),
    ];
    Arc::new(Envelope {
        columns: vec!["k".into(), "v".into()],
        rows: payloads
            .iter()
            .enumerate()
            .map(|(i, (payload, json))| {
                row(format!("m{i}-0"), payload.to_vec(), *json, 0, i as u64 + 1)
            })
            .collect(),
    })
}

/// `examples/plugins/build.sh <target>/example-plugins`, once per test binary.
fn built_dir() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let exe = std::env::current_exe().expect("test exe");
        let out = exe
            .ancestors()
            .nth(3)
            .expect("target dir")
            .join("example-plugins");
        let output = std::process::Command::new("bash")
            .arg(root.join("examples/plugins/build.sh"))
            .arg(&out)
            .current_dir(&root)
            .env("CARGO", env!("CARGO"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .expect("running examples/plugins/build.sh (is bash installed?)");
        assert!(
            output.status.success(),
            "examples/plugins/build.sh failed ({}); it needs cargo with wasm32-wasip2, \
             python3 with venv, node and npm\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        out
    })
}

fn wasm(file: &str) -> Vec<u8> {
    let path = built_dir().join(file);
    // A successful build.sh writes all three files; a missing one is a bug there.
    std::fs::read(&path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .expect("an example built by examples/plugins/build.sh")
}

fn grants() -> Grants {
    Grants {
        mqtt_topics: vec![TopicFilter::parse("examples/#").expect("filter")],
        ..Grants::default()
    }
}

/// Loads `file`, checks a bad configuration is refused, delivers the envelope and checks
/// what the plugin published, counted and how it maps a connector error.
async fn check_example(file: &str, by: &str) {
    let (host, recorder) = host(HostSettings::default());
    let plugin = host
        .load(&format!("example:{file}"), &wasm(file))
        .expect("load");

    let error = host
        .destination(
            plugin.clone(),
            &format!("{by}-bad"),
            "$rule/example",
            "{}".into(),
            grants(),
        )
        .await
        .expect_err("a configuration without topic is refused");
    assert!(error.to_string().contains("topic"), "{by}: {error}");

    let name = format!("{by}-enrich");
    let destination = host
        .destination(
            plugin.clone(),
            &name,
            "$rule/example",
            r#"{"topic":"examples/out"}"#.into(),
            grants(),
        )
        .await
        .expect("start");
    let batch = envelope();
    destination.deliver(&batch).await.expect("delivered");

    let published = recorder.take();
    assert_eq!(
        published.len(),
        batch.rows.len(),
        "{by}: one message per row"
    );
    for (message, row) in published.iter().zip(&batch.rows) {
        assert_eq!(message.topic.as_str(), "examples/out", "{by}");
        assert_eq!(message.qos, QoS::AtLeastOnce, "{by}");
        assert_eq!(message.publisher, "$rule/example", "{by}");
        let payload: Value = serde_json::from_slice(&message.payload)
            .map_err(|e| format!("{by}: {e}"))
            .expect("a JSON payload");
        let expected_row = if row.json {
            serde_json::from_slice::<Value>(&row.payload).expect("test row JSON")
        } else {
            Value::Null
        };
        assert_eq!(
            payload,
            json!({ "id": row.id, "by": by, "row": expected_row }),
            "{by}"
        );
    }
    let metrics = host.counts(&name).expect("metrics");
    assert_eq!(metrics.plugin_counter("rows"), 4, "{by}");
    let counts = metrics.counts();
    assert_eq!(
        (counts.calls, counts.rows, counts.failed_calls, counts.traps),
        (1, 4, 0, 0),
        "{by}"
    );

    // A topic outside the grants: the connector refuses it, the plugin gives up (permanent).
    let denied = host
        .destination(
            plugin,
            &format!("{by}-denied"),
            "$rule/example",
            r#"{"topic":"elsewhere/out"}"#.into(),
            grants(),
        )
        .await
        .expect("start");
    let outcome = denied.deliver(&batch).await;
    assert!(
        matches!(&outcome, Err(DeliveryError::Permanent(why)) if why.contains("permission denied")),
        "{by}: {outcome:?}"
    );
    assert!(
        recorder.take().is_empty(),
        "{by}: nothing outside the grant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_example_enriches_each_row() {
    check_example("rust_enrich.wasm", "rust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_enriches_each_row() {
    check_example("python_enrich.wasm", "python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_example_enriches_each_row() {
    check_example("js_enrich.wasm", "javascript").await;
}
