//! # eddy-plugin-host — every destination is a sandboxed Wasm component
//!
//! Rules hand their output rows to destinations; each destination is a WebAssembly
//! component implementing the `destination` world of `sdk-wit/wit/plugin.wit`
//! (`eddy:plugin@0.1.0`) — the built-in ones (`republish`, `http-forward`, built from
//! `plugins/` and embedded) exactly like a user's `.wasm`.
//!
//! ```text
//! PluginHost (one wasmtime Engine: Cranelift, pooling allocator, epoch ticker)
//!   ├─ load(bytes) ──▶ Plugin: compiled Component + InstancePre (linked once, reused)
//!   └─ destination(plugin, name, config, grants) ──▶ PluginDestination
//!         own Store per instance: memory limit (StoreLimits), CPU deadline (epochs),
//!         WASI without files, sockets or environment; connectors checked against grants
//!         deliver(batch) ──▶ plugin `deliver` ──▶ connectors (router, HTTP, …)
//! ```
//!
//! A trap, an exceeded memory limit or CPU deadline costs only that instance: it is
//! dropped, restarted after a backoff, and the batch is returned as retryable, so the
//! delivery layer delivers it again. Other destinations and the hub are unaffected.
//!
//! Connectors: `mqtt` (the router), `http` (reqwest), `kafka` (rdkafka), `pulsar`
//! (pulsar-rs), `sql` (sqlx: PostgreSQL, MySQL/MariaDB); see `connectors.rs`.

mod bindings;
pub mod builtin;
mod connectors;
mod destination;
mod grants;
mod kafka;
mod metrics;
mod pulsar;
mod sql;
mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use connectors::Connectors;
pub use destination::PluginDestination;
pub use grants::Grants;
pub use metrics::{DestinationCounts, DestinationMetrics, PluginsCollector};

use state::HostState;

/// Limits every plugin instance runs under.
#[derive(Debug, Clone)]
pub struct HostSettings {
    /// Linear memory one instance may grow to.
    pub memory_bytes: usize,
    /// Time one `configure` or `deliver` call may run in the plugin itself (waiting in
    /// connectors does not count).
    pub cpu_time: Duration,
    /// Instances that may exist at once (the pooling allocator's slots).
    pub max_instances: u32,
    /// Restart backoff after a trap: doubles from `restart_initial` up to `restart_max`.
    pub restart_initial: Duration,
    pub restart_max: Duration,
}

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            cpu_time: Duration::from_secs(5),
            max_instances: 256,
            restart_initial: Duration::from_millis(100),
            restart_max: Duration::from_secs(30),
        }
    }
}

/// Why a plugin could not be loaded or started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {0}: not a valid destination component: {1}")]
    Load(String, String),
    #[error("unknown built-in plugin {0:?} (built in: {1})")]
    UnknownBuiltin(String, String),
    #[error("plugin instance could not start: {0}")]
    Instantiate(String),
    #[error("plugin refused its configuration: {0}")]
    Configure(String),
    #[error("plugin host: {0}")]
    Engine(String),
}

/// A compiled, linked plugin, instantiated once per destination.
pub struct Plugin {
    key: String,
    pre: bindings::DestinationPre<HostState>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The hub's one Wasm engine and the plugins it has compiled.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<HostState>,
    settings: HostSettings,
    connectors: Arc<Connectors>,
    metrics: Arc<metrics::Registry>,
    plugins: Mutex<HashMap<String, Arc<Plugin>>>,
    ticker_stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How often the epoch advances: the granularity of CPU deadlines and of yielding.
const EPOCH_TICK: Duration = Duration::from_millis(10);

impl PluginHost {
    pub fn new(settings: HostSettings, connectors: Connectors) -> Result<Arc<Self>, PluginError> {
        let engine_error = |e: wasmtime::Error| PluginError::Engine(format!("{e:#}"));
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(settings.max_instances)
            .total_core_instances(settings.max_instances.saturating_mul(16))
            .total_memories(settings.max_instances.saturating_mul(2))
            .total_tables(settings.max_instances.saturating_mul(8))
            .total_stacks(settings.max_instances)
            .max_memories_per_component(4)
            .max_core_instances_per_component(32)
            .max_tables_per_component(16)
            .max_memory_size(settings.memory_bytes);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        bindings::Destination::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |state| state,
        )
        .map_err(engine_error)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let stop = ticker_stop.clone();
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("eddy-wasm-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        Ok(Arc::new(Self {
            engine,
            linker,
            settings,
            connectors: Arc::new(connectors),
            metrics: Arc::default(),
            plugins: Mutex::default(),
            ticker_stop,
        }))
    }

    /// Compiles and links a component once per `key` (`builtin:republish`, a path…).
    pub fn load(&self, key: &str, bytes: &[u8]) -> Result<Arc<Plugin>, PluginError> {
        if let Some(plugin) = self
            .plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            return Ok(plugin.clone());
        }
        let load_error = |e: wasmtime::Error| PluginError::Load(key.to_owned(), format!("{e:#}"));
        let component = Component::new(&self.engine, bytes).map_err(load_error)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(load_error)?;
        let pre = bindings::DestinationPre::new(pre).map_err(load_error)?;
        let plugin = Arc::new(Plugin {
            key: key.to_owned(),
            pre,
        });
        self.plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), plugin.clone());
        Ok(plugin)
    }

    /// Loads one of the plugins built into `eddy` by name (`republish`, `http-forward`).
    pub fn load_builtin(&self, name: &str) -> Result<Arc<Plugin>, PluginError> {
        let bytes = builtin::bytes(name).ok_or_else(|| {
            PluginError::UnknownBuiltin(name.to_owned(), builtin::NAMES.join(", "))
        })?;
        self.load(&format!("builtin:{name}"), bytes)
    }

    /// Starts a destination: instantiates `plugin` and configures it with `config` (JSON).
    /// `publisher_id` names what it republishes (`$rule/<rule>` keeps rule output out of
    /// rules).
    pub async fn destination(
        self: &Arc<Self>,
        plugin: Arc<Plugin>,
        name: &str,
        publisher_id: &str,
        config: String,
        grants: Grants,
    ) -> Result<Arc<PluginDestination>, PluginError> {
        PluginDestination::start(
            self.clone(),
            plugin,
            name.to_owned(),
            publisher_id.to_owned(),
            config,
            grants,
        )
        .await
    }

    /// The counters of destination `name`, if it ever started.
    pub fn counts(&self, name: &str) -> Option<Arc<DestinationMetrics>> {
        self.metrics.get(name)
    }

    pub fn collector(&self) -> PluginsCollector {
        PluginsCollector(self.metrics.clone())
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
