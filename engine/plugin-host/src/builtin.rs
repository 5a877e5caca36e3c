//! The built-in destination plugins, compiled from `plugins/` for `wasm32-wasip2` by this
//! crate's build script and embedded in the binary.

/// The built-in plugins' names.
pub const NAMES: [&str; 2] = ["republish", "http-forward"];

const REPUBLISH: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/republish.wasm"));
const HTTP_FORWARD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/http-forward.wasm"));

/// The component bytes of built-in plugin `name`.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    match name {
        "republish" => Some(REPUBLISH),
        "http-forward" => Some(HTTP_FORWARD),
        _ => None,
    }
}
