//! Per-rule counters and latency, read by the API (`Stats` on DescribeTopicRule) and
//! scraped on `/metrics` as `eddy_rule_…{rule="…"}` families.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use serde::Serialize;

use crate::RuleStats;

/// Upper bounds (seconds) of the latency histogram's buckets; the last is +Inf.
const LATENCY_BOUNDS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0];

/// One rule's counters. They survive replacing, disabling and re-enabling the rule, and
/// go away when it is deleted.
#[derive(Debug, Default)]
pub struct RuleMetrics {
    /// Messages that matched the rule's FROM filter and were evaluated.
    matched: AtomicU64,
    /// Output rows (messages that passed WHERE).
    passed: AtomicU64,
    not_json: AtomicU64,
    missing_fields: AtomicU64,
    type_mismatches: AtomicU64,
    /// Batches the rule could not evaluate (their messages count here, one by one).
    evaluation_errors: AtomicU64,
    /// Messages an action was given.
    action_messages: AtomicU64,
    /// Messages an action failed to take (then handed to the error actions, if any).
    action_errors: AtomicU64,
    /// From acceptance by the broker to the rule's output being handed to its actions.
    latency_buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    latency_sum_micros: AtomicU64,
    latency_count: AtomicU64,
}

/// A snapshot of [`RuleMetrics`], as the API returns it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuleCounts {
    pub matched: u64,
    pub passed: u64,
    pub not_json: u64,
    pub missing_fields: u64,
    pub type_mismatches: u64,
    pub evaluation_errors: u64,
    pub action_messages: u64,
    pub action_errors: u64,
}

impl RuleMetrics {
    pub(crate) fn decoded(&self, delta: RuleStats) {
        self.matched.fetch_add(delta.rows, Ordering::Relaxed);
        self.not_json.fetch_add(delta.not_json, Ordering::Relaxed);
        self.missing_fields
            .fetch_add(delta.missing_fields, Ordering::Relaxed);
        self.type_mismatches
            .fetch_add(delta.type_mismatches, Ordering::Relaxed);
    }

    pub(crate) fn passed(&self, rows: u64) {
        self.passed.fetch_add(rows, Ordering::Relaxed);
    }

    pub(crate) fn evaluation_failed(&self, rows: u64) {
        self.evaluation_errors.fetch_add(rows, Ordering::Relaxed);
    }

    pub(crate) fn action_given(&self, messages: u64) {
        self.action_messages.fetch_add(messages, Ordering::Relaxed);
    }

    pub(crate) fn latency(&self, seconds: f64) {
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add((seconds.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> RuleCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RuleCounts {
            matched: get(&self.matched),
            passed: get(&self.passed),
            not_json: get(&self.not_json),
            missing_fields: get(&self.missing_fields),
            type_mismatches: get(&self.type_mismatches),
            evaluation_errors: get(&self.evaluation_errors),
            action_messages: get(&self.action_messages),
            action_errors: get(&self.action_errors),
        }
    }
}

/// Encodes every loaded rule's metrics at scrape time (so a deleted rule's series go
/// away with it).
#[derive(Debug)]
pub(crate) struct RulesCollector(pub(crate) Arc<super::RuleEngine>);

type Counter = (&'static str, &'static str, fn(&RuleCounts) -> u64);

const COUNTERS: [Counter; 8] = [
    (
        "eddy_rule_matched",
        "Messages that matched a rule's FROM filter and were evaluated",
        |c| c.matched,
    ),
    (
        "eddy_rule_passed",
        "Output rows: messages that passed a rule's WHERE",
        |c| c.passed,
    ),
    (
        "eddy_rule_not_json",
        "Payloads that were not JSON where a rule reads fields (fields became NULL)",
        |c| c.not_json,
    ),
    (
        "eddy_rule_missing_fields",
        "Referenced fields absent from a JSON payload (became NULL)",
        |c| c.missing_fields,
    ),
    (
        "eddy_rule_type_mismatches",
        "Values of the wrong type for their use in a rule (became NULL)",
        |c| c.type_mismatches,
    ),
    (
        "eddy_rule_evaluation_errors",
        "Messages in batches a rule could not evaluate",
        |c| c.evaluation_errors,
    ),
    (
        "eddy_rule_action_messages",
        "Messages handed to a rule's actions",
        |c| c.action_messages,
    ),
    (
        "eddy_rule_action_errors",
        "Messages a rule's action failed to take",
        |c| c.action_errors,
    ),
];

impl Collector for RulesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rules = self.0.all_metrics();
        // Each rule's counts once per scrape (they include its queues' delivery failures).
        let counts: Vec<RuleCounts> = rules
            .iter()
            .map(|(rule, metrics)| self.0.counts(rule).unwrap_or_else(|| metrics.counts()))
            .collect();
        for (name, help, read) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for ((rule, _), counts) in rules.iter().zip(&counts) {
                let labels = [("rule", rule.as_str())];
                ConstCounter::new(read(counts)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "eddy_rule_latency_seconds",
            "From the broker accepting a message to a rule's output reaching its actions",
            None,
            MetricType::Histogram,
        )?;
        for (rule, m) in &rules {
            let labels = [("rule", rule.as_str())];
            // Per-bucket counts: the encoder makes them cumulative.
            let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
                .iter()
                .chain([&f64::INFINITY])
                .zip(&m.latency_buckets)
                .map(|(bound, count)| (*bound, count.load(Ordering::Relaxed)))
                .collect();
            family
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    m.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
                    m.latency_count.load(Ordering::Relaxed),
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}
