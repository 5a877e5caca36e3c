//! Builds the built-in destination plugins (`plugins/`, a separate workspace) for
//! `wasm32-wasip2` and copies them into OUT_DIR for `include_bytes!`.
//!
//! Needs the target: `rustup target add wasm32-wasip2` (the README's commands install it).

use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: [(&str, &str); 4] = [
    ("eddy-plugin-republish", "republish"),
    ("eddy-plugin-http-forward", "http-forward"),
    ("eddy-plugin-sql", "sql"),
    ("eddy-plugin-queue", "queue"),
];

/// The test fixture that spins, allocates, panics and oversteps its grants.
const HOSTILE: &str = "eddy-plugin-hostile";

fn main() -> Result<(), String> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir.join("../..");
    let plugins = root.join("plugins");
    for watched in [
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "plugins/republish",
        "plugins/http-forward",
        "plugins/sql",
        "plugins/queue",
        "plugins/hostile",
        "sdk-wit/src",
        "sdk-wit/wit",
        "sdk-wit/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    // <target>/<profile>/build/<crate>/out → <target>/wasm-plugins: shared by every
    // profile, so the guest build is incremental too.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("wasm-plugins"))
        .unwrap_or_else(|| out_dir.join("wasm-plugins"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for (package, _) in PLUGINS {
        command.args(["-p", package]);
    }
    // The containment tests' hostile fixture, in the same guest build (never embedded:
    // only its path is exported, as `HOSTILE_FIXTURE`).
    command.args(["-p", HOSTILE]);
    // The host build's flags and wrappers (clippy, coverage) are not for the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .map_err(|e| format!("running cargo for plugins/: {e}"))?;
    if !status.success() {
        return Err(
            "building the built-in plugins failed (is the target installed? \
                    `rustup target add wasm32-wasip2`)"
                .into(),
        );
    }
    let release = target_dir.join("wasm32-wasip2/release");
    let hostile = release.join(format!("{}.wasm", HOSTILE.replace('-', "_")));
    println!("cargo:rustc-env=EDDY_HOSTILE_FIXTURE={}", hostile.display());
    for (package, name) in PLUGINS {
        let file = format!("{}.wasm", package.replace('-', "_"));
        let built: &Path = &release.join(file);
        std::fs::copy(built, out_dir.join(format!("{name}.wasm")))
            .map_err(|e| format!("copying {}: {e}", built.display()))?;
    }
    Ok(())
}
