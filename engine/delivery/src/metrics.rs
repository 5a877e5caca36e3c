//! Per-queue counters and latency, scraped on `/metrics` as `eddy_delivery_…{queue="…"}`
//! families and readable as [`QueueCounts`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::service::Inner;

/// Upper bounds (seconds) of the latency histogram's buckets; the last is +Inf. Delivery
/// latency spans milliseconds (healthy) to the retry window (an outage).
const LATENCY_BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0, 3600.0,
];

/// One queue's counters since the service opened.
#[derive(Debug, Default)]
pub(crate) struct QueueMetrics {
    delivered_rows: AtomicU64,
    retries: AtomicU64,
    failed_rows: AtomicU64,
    dropped_rows: AtomicU64,
    /// From the oldest row's arrival at the hub to its destination's Ok.
    latency_buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    latency_sum_micros: AtomicU64,
    latency_count: AtomicU64,
}

impl QueueMetrics {
    pub fn delivered(&self, rows: u64) {
        self.delivered_rows.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failed(&self, rows: u64) {
        self.failed_rows.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn dropped(&self, rows: u64) {
        self.dropped_rows.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn latency(&self, seconds: f64) {
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add((seconds.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    fn load(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A snapshot of one queue: counters since the service opened, then its current state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Rows a destination acknowledged.
    pub delivered_rows: u64,
    /// Failed attempts that were retried (one per attempt, not per row).
    pub retries: u64,
    /// Rows that failed for good (handed to the error queues and dead-lettered).
    pub failed_rows: u64,
    /// Rows removed unsent by [`crate::FullPolicy::DropOldest`].
    pub dropped_rows: u64,
    pub pending_rows: u64,
    pub pending_entries: u64,
    pub pending_bytes: u64,
    pub dead_letters: u64,
    /// Latency observations (one per delivered batch).
    pub latency_count: u64,
}

impl QueueCounts {
    pub(crate) fn of(state: &crate::state::QueueState) -> Self {
        let m = &state.metrics;
        let c = state.counters();
        Self {
            delivered_rows: QueueMetrics::load(&m.delivered_rows),
            retries: QueueMetrics::load(&m.retries),
            failed_rows: QueueMetrics::load(&m.failed_rows),
            dropped_rows: QueueMetrics::load(&m.dropped_rows),
            pending_rows: c.rows,
            pending_entries: c.entries,
            pending_bytes: c.bytes,
            dead_letters: c.dead_letters,
            latency_count: QueueMetrics::load(&m.latency_count),
        }
    }
}

/// Encodes every known queue's metrics at scrape time; register it with
/// `Registry::register_collector`.
#[derive(Debug)]
pub struct DeliveryCollector(pub(crate) Arc<Inner>);

type Family = (&'static str, &'static str, fn(&QueueCounts) -> u64);

const COUNTERS: [Family; 4] = [
    (
        "eddy_delivery_delivered_rows",
        "Rows a destination acknowledged",
        |c| c.delivered_rows,
    ),
    (
        "eddy_delivery_retries",
        "Failed delivery attempts that were retried",
        |c| c.retries,
    ),
    (
        "eddy_delivery_failed_rows",
        "Rows that failed for good: sent to the error actions and dead-lettered",
        |c| c.failed_rows,
    ),
    (
        "eddy_delivery_dropped_rows",
        "Rows dropped unsent because their queue was full",
        |c| c.dropped_rows,
    ),
];

const GAUGES: [Family; 2] = [
    (
        "eddy_delivery_pending_rows",
        "Rows waiting in a delivery queue",
        |c| c.pending_rows,
    ),
    (
        "eddy_delivery_dead_letters",
        "Dead-lettered batches of a delivery queue",
        |c| c.dead_letters,
    ),
];

impl Collector for DeliveryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let queues = self.0.all_queues();
        let counts: Vec<_> = queues.iter().map(|q| QueueCounts::of(q)).collect();
        for (name, help, read) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (q, c) in queues.iter().zip(&counts) {
                let labels = [("queue", q.id.as_str())];
                ConstCounter::new(read(c)).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, read) in GAUGES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (q, c) in queues.iter().zip(&counts) {
                let labels = [("queue", q.id.as_str())];
                let value = i64::try_from(read(c)).unwrap_or(i64::MAX);
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "eddy_delivery_latency_seconds",
            "From the hub receiving a batch's oldest row to its destination acknowledging it",
            None,
            MetricType::Histogram,
        )?;
        for q in &queues {
            let m = &q.metrics;
            let labels = [("queue", q.id.as_str())];
            // Per-bucket counts: the encoder makes them cumulative.
            let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
                .iter()
                .chain([&f64::INFINITY])
                .zip(&m.latency_buckets)
                .map(|(bound, count)| (*bound, QueueMetrics::load(count)))
                .collect();
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    QueueMetrics::load(&m.latency_sum_micros) as f64 / 1e6,
                    QueueMetrics::load(&m.latency_count),
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}
