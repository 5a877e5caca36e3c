//! Per-destination plugin counters, scraped on `/metrics` as `eddy_plugin_…{destination}`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

/// Most distinct plugin-defined counter names one destination may create.
const MAX_PLUGIN_COUNTERS: usize = 64;

/// One destination's counters.
#[derive(Debug, Default)]
pub struct DestinationMetrics {
    calls: AtomicU64,
    rows: AtomicU64,
    failed_calls: AtomicU64,
    traps: AtomicU64,
    restarts: AtomicU64,
    call_micros: AtomicU64,
    plugin: Mutex<BTreeMap<String, u64>>,
}

/// A snapshot, for tests and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DestinationCounts {
    /// `deliver` calls that returned (ok or a plugin error).
    pub calls: u64,
    pub rows: u64,
    /// Calls that returned a plugin error.
    pub failed_calls: u64,
    /// Instances lost to a trap or a breached limit.
    pub traps: u64,
    /// Instances started again after a trap.
    pub restarts: u64,
}

impl DestinationMetrics {
    pub(crate) fn delivered(&self, rows: usize, took: Duration, ok: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        if !ok {
            self.failed_calls.fetch_add(1, Ordering::Relaxed);
        }
        self.call_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn trapped(&self) {
        self.traps.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn plugin_counter_add(&self, name: &str, value: u64) {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return;
        }
        let mut counters = self.plugin.lock().unwrap_or_else(|p| p.into_inner());
        if counters.len() >= MAX_PLUGIN_COUNTERS && !counters.contains_key(name) {
            return;
        }
        let counter = counters.entry(name.to_owned()).or_default();
        *counter = counter.saturating_add(value);
    }

    pub fn counts(&self) -> DestinationCounts {
        DestinationCounts {
            calls: self.calls.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            failed_calls: self.failed_calls.load(Ordering::Relaxed),
            traps: self.traps.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
        }
    }

    /// A plugin-defined counter's value.
    pub fn plugin_counter(&self, name: &str) -> u64 {
        let counters = self.plugin.lock().unwrap_or_else(|p| p.into_inner());
        counters.get(name).copied().unwrap_or(0)
    }
}

/// Every destination's metrics, by name.
#[derive(Debug, Default)]
pub(crate) struct Registry(Mutex<BTreeMap<String, Arc<DestinationMetrics>>>);

impl Registry {
    /// The metrics of `name`; one set per name, kept across restarts and reconfiguration.
    pub(crate) fn destination(&self, name: &str) -> Arc<DestinationMetrics> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(name.to_owned()).or_default().clone()
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<DestinationMetrics>> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.get(name).cloned()
    }

    fn all(&self) -> Vec<(String, Arc<DestinationMetrics>)> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

type Read = fn(&DestinationCounts) -> u64;

const COUNTERS: [(&str, &str, Read); 5] = [
    ("eddy_plugin_calls", "deliver calls that returned", |c| {
        c.calls
    }),
    (
        "eddy_plugin_rows",
        "rows given to deliver calls that returned",
        |c| c.rows,
    ),
    (
        "eddy_plugin_failed_calls",
        "deliver calls that returned a plugin error",
        |c| c.failed_calls,
    ),
    (
        "eddy_plugin_traps",
        "plugin instances lost to a trap or a breached limit",
        |c| c.traps,
    ),
    (
        "eddy_plugin_restarts",
        "plugin instances started again after a trap",
        |c| c.restarts,
    ),
];

/// The `/metrics` view of every destination.
#[derive(Debug)]
pub struct PluginsCollector(pub(crate) Arc<Registry>);

impl Collector for PluginsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = self.0.all();
        for (name, help, read) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (destination, metrics) in &all {
                let labels = [("destination", destination.as_str())];
                ConstCounter::new(read(&metrics.counts()))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "eddy_plugin_counter",
            "counters the plugins define (metrics.counter-add)",
            None,
            MetricType::Counter,
        )?;
        for (destination, metrics) in &all {
            let counters = metrics
                .plugin
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for (name, value) in counters {
                let labels = [
                    ("destination", destination.as_str()),
                    ("name", name.as_str()),
                ];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
