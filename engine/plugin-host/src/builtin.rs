//! The built-in destination plugins, compiled from `plugins/` for `wasm32-wasip2` by this
//! crate's build script and embedded in the binary.

/// The built-in plugins' names (`postgres` and `mysql` are one plugin, `sql`, whose
/// configuration names the dialect; `kafka` and `pulsar` are one plugin, `queue`, whose
/// configuration names the broker).
pub const NAMES: [&str; 6] = [
    "republish",
    "http-forward",
    "postgres",
    "mysql",
    "kafka",
    "pulsar",
];

const REPUBLISH: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/republish.wasm"));
const HTTP_FORWARD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/http-forward.wasm"));
const SQL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sql.wasm"));
const QUEUE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/queue.wasm"));

/// The component bytes of built-in plugin `name`.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    match name {
        "republish" => Some(REPUBLISH),
        "http-forward" => Some(HTTP_FORWARD),
        "postgres" | "mysql" => Some(SQL),
        "kafka" | "pulsar" => Some(QUEUE),
        _ => None,
    }
}

/// Where the build put `plugins/hostile` (wasm32-wasip2): the fixture the containment
/// tests here and in `tests/mqtt` load. Never embedded, never loaded by the hub.
#[doc(hidden)]
pub const HOSTILE_FIXTURE: &str = env!("EDDY_HOSTILE_FIXTURE");
