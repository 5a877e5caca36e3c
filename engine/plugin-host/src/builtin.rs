//! The built-in destination plugins, compiled from `plugins/` for `wasm32-wasip2` by this
//! crate's build script and embedded in the binary.

/// The built-in plugins' names (`postgres` and `mysql` are one plugin, `sql`, whose
/// configuration names the dialect).
pub const NAMES: [&str; 4] = ["republish", "http-forward", "postgres", "mysql"];

const REPUBLISH: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/republish.wasm"));
const HTTP_FORWARD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/http-forward.wasm"));
const SQL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sql.wasm"));

/// The component bytes of built-in plugin `name`.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    match name {
        "republish" => Some(REPUBLISH),
        "http-forward" => Some(HTTP_FORWARD),
        "postgres" | "mysql" => Some(SQL),
        _ => None,
    }
}
