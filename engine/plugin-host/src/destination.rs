//! One configured destination: a plugin, its configuration and grants, and the live
//! instance that delivers its batches — quarantined and restarted with backoff when it
//! traps or breaches a limit.
//!
//! ```text
//! deliver(batch) ──▶ instance live? ── no ──▶ wait out the restart backoff, instantiate,
//!                        │                     configure(config)
//!                        ▼
//!              deliver export (CPU deadline, memory limit)
//!                ├─ ok / plugin error ──▶ returned to the delivery layer
//!                └─ trap / limit ──▶ instance dropped (quarantine), backoff doubled,
//!                                    Retry returned: the batch is delivered again
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_core::destination::{DeliveryError, Envelope};
use wasmtime::component::Resource;
use wasmtime::{Store, UpdateDeadline};

use crate::bindings::{self, eddy::plugin::types};
use crate::metrics::DestinationMetrics;
use crate::state::{BatchRep, HostState};
use crate::{Connectors, Grants, Plugin, PluginError, PluginHost};

/// What every instance of one destination shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    /// The publisher id of messages it republishes (`$rule/<rule>` for rule actions).
    pub(crate) publisher_id: String,
    pub(crate) grants: Grants,
    pub(crate) connectors: Arc<Connectors>,
    pub(crate) metrics: Arc<DestinationMetrics>,
}

struct Live {
    store: Store<HostState>,
    bindings: bindings::Destination,
}

struct Slot {
    live: Option<Live>,
    /// A call is running in `live`; still set at the next call means the previous call's
    /// future was dropped mid-way and the instance is in an unknown state.
    busy: bool,
    /// Consecutive traps; the restart backoff doubles with each.
    traps: u32,
    restart_at: Option<Instant>,
}

/// A destination backed by a plugin instance. Implements [`eddy_core::Destination`].
pub struct PluginDestination {
    host: Arc<PluginHost>,
    plugin: Arc<Plugin>,
    config: String,
    shared: Arc<Shared>,
    slot: tokio::sync::Mutex<Slot>,
}

impl std::fmt::Debug for PluginDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginDestination")
            .field("name", &self.shared.name)
            .field("plugin", &self.plugin.key)
            .finish_non_exhaustive()
    }
}

impl PluginDestination {
    /// Instantiates and configures the plugin once (so a bad configuration is refused
    /// here, not at the first batch).
    pub(crate) async fn start(
        host: Arc<PluginHost>,
        plugin: Arc<Plugin>,
        name: String,
        publisher_id: String,
        config: String,
        grants: Grants,
    ) -> Result<Arc<Self>, PluginError> {
        let shared = Arc::new(Shared {
            metrics: host.metrics.destination(&name),
            name,
            publisher_id,
            grants,
            connectors: host.connectors.clone(),
        });
        let this = Self {
            host,
            plugin,
            config,
            shared,
            slot: tokio::sync::Mutex::new(Slot {
                live: None,
                busy: false,
                traps: 0,
                restart_at: None,
            }),
        };
        let live = this.instantiate().await?;
        this.slot.lock().await.live = Some(live);
        Ok(Arc::new(this))
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    async fn instantiate(&self) -> Result<Live, PluginError> {
        let settings = &self.host.settings;
        let mut store = Store::new(
            &self.host.engine,
            HostState::new(self.shared.clone(), settings.memory_bytes),
        );
        store.limiter(|state| &mut state.limits);
        let cpu = settings.cpu_time;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            Ok(if ctx.data().guest_time() > cpu {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store.data_mut().start_call();
        let bindings = self
            .plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        store.data_mut().start_call();
        bindings
            .call_configure(&mut store, &self.config)
            .await
            .map_err(|e| PluginError::Instantiate(format!("configure trapped: {e:#}")))?
            .map_err(PluginError::Configure)?;
        Ok(Live { store, bindings })
    }

    /// Drops a trapped instance and schedules its restart.
    fn quarantine(&self, slot: &mut Slot, why: &str) {
        slot.live = None;
        slot.traps = slot.traps.saturating_add(1);
        let settings = &self.host.settings;
        let backoff = settings
            .restart_initial
            .saturating_mul(1u32 << slot.traps.saturating_sub(1).min(16))
            .min(settings.restart_max);
        slot.restart_at = Some(Instant::now() + backoff);
        self.shared.metrics.trapped();
        tracing::warn!(destination = %self.shared.name, plugin = %self.plugin.key, error = why, ?backoff, "plugin instance quarantined; restarting after backoff");
    }
}

fn map_error(error: types::DeliveryError) -> DeliveryError {
    match error {
        types::DeliveryError::Retry(why) => DeliveryError::Retry(why),
        types::DeliveryError::RetryAfter(r) => {
            DeliveryError::RetryAfter(Duration::from_millis(u64::from(r.millis)), r.reason)
        }
        types::DeliveryError::Permanent(why) => DeliveryError::Permanent(why),
        types::DeliveryError::Rejected(rows) => DeliveryError::Rejected(
            rows.into_iter()
                .map(|r| (r.index as usize, r.reason))
                .collect(),
        ),
    }
}

#[async_trait::async_trait]
impl eddy_core::destination::Destination for PluginDestination {
    async fn deliver(&self, batch: &Arc<Envelope>) -> Result<(), DeliveryError> {
        let mut slot = self.slot.lock().await;
        if slot.busy {
            // The last call was abandoned (its caller gave up): never reuse that instance.
            slot.live = None;
            slot.busy = false;
        }
        if slot.live.is_none() {
            if let Some(at) = slot.restart_at {
                tokio::time::sleep_until(at.into()).await;
            }
            match self.instantiate().await {
                Ok(live) => {
                    self.shared.metrics.restarted();
                    slot.live = Some(live);
                }
                Err(PluginError::Configure(why)) => {
                    return Err(DeliveryError::Permanent(format!(
                        "configuration refused: {why}"
                    )));
                }
                Err(error) => {
                    let why = error.to_string();
                    self.quarantine(&mut slot, &why);
                    return Err(DeliveryError::Retry(why));
                }
            }
        }
        let Some(live) = slot.live.as_mut() else {
            return Err(DeliveryError::Retry("no plugin instance".into()));
        };
        let started = Instant::now();
        let rep = live
            .store
            .data_mut()
            .table
            .push(BatchRep(batch.clone()))
            .map_err(|e| DeliveryError::Retry(e.to_string()))?;
        let handle = rep.rep();
        live.store.data_mut().start_call();
        slot.busy = true;
        let Some(live) = slot.live.as_mut() else {
            return Err(DeliveryError::Retry("no plugin instance".into()));
        };
        let result = live
            .bindings
            .call_deliver(&mut live.store, Resource::new_borrow(handle))
            .await;
        slot.busy = false;
        match result {
            Ok(outcome) => {
                if let Some(live) = slot.live.as_mut() {
                    let _ = live.store.data_mut().table.delete(rep);
                }
                slot.traps = 0;
                slot.restart_at = None;
                self.shared
                    .metrics
                    .delivered(batch.len(), started.elapsed(), outcome.is_ok());
                outcome.map_err(map_error)
            }
            Err(trap) => {
                let why = format!("{trap:#}");
                self.quarantine(&mut slot, &why);
                Err(DeliveryError::Retry(format!(
                    "plugin instance trapped: {why}"
                )))
            }
        }
    }
}
