//! The running rule engine: it takes accepted messages from the broker (as its
//! [`MessageTap`]), batches them, evaluates the loaded rules and runs their actions.
//!
//! ```text
//!  broker ──offer──▶ index check (no rule: nothing queued) ──▶ bounded queue (full: the
//!                                                              publisher waits)
//!  "eddy-rules" thread: N rows or T time ──▶ per FROM group: MessageBatch
//!        └─▶ each rule of the group: decode → WHERE → SELECT ──▶ actions (republish)
//! ```
//!
//! Rules are swapped in whole ([`RuleEngine::load`]): messages already queued are
//! evaluated by the rules loaded when their batch is flushed, so a replace never drops
//! them. Messages a rule republishes are not fed to rules again (no loops).
//!
//! Until the delivery layer (issue D) lands, the queue is in memory: the broker's PUBACK
//! does not wait for rules, so a crash loses queued rule input and republishes in flight.

mod actions;
mod dry_run;
mod metrics;
mod set;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use eddy_core::{Backpressure, Message, MessageTap, Publish};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

pub use actions::{Action, ActionError, MAX_ACTIONS, TopicTemplate, parse_actions, row_payloads};
pub use dry_run::{ActionPreview, DryRun, SampleMessage, dry_run};
pub use metrics::{RuleCounts, RuleMetrics};
pub use set::{DefinitionError, RuleDefinition};

use crate::{MessageBatch, MessageBatchBuilder};
use set::{LoadedRule, RuleSet};

/// The publisher id of messages rules republish; such messages never feed rules.
pub const RULE_PUBLISHER_PREFIX: &str = "$rule/";

/// How the engine batches.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// A batch is evaluated once it has this many messages…
    pub batch_rows: usize,
    /// …or once its first message has waited this long.
    pub batch_time: Duration,
    /// Messages waiting for the engine; when full, publishers wait (back-pressure).
    pub queue: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            batch_rows: 4096,
            batch_time: Duration::from_millis(5),
            queue: 65_536,
        }
    }
}

/// One message waiting for the engine.
#[derive(Debug)]
struct Offered {
    message: Arc<Message>,
    client_ip: Option<IpAddr>,
    seq: u64,
}

/// The rule engine. Create with [`RuleEngine::start`], feed with [`MessageTap::offer`],
/// load rules with [`RuleEngine::load`].
#[derive(Debug)]
pub struct RuleEngine {
    current: RwLock<Arc<RuleSet>>,
    /// Serialises reloads (readers never wait for it).
    reload: Mutex<()>,
    /// Counters of every stored rule, enabled or not.
    metrics: Mutex<HashMap<String, Arc<RuleMetrics>>>,
    queue: mpsc::Sender<Offered>,
    publisher: Arc<dyn Publish>,
    seq: AtomicU64,
}

impl RuleEngine {
    /// Starts the engine's thread; actions publish through `publisher`. Must be called
    /// inside a tokio runtime, which the engine then uses for its timers and publishes.
    /// The thread ends when the engine is dropped.
    pub fn start(
        settings: EngineSettings,
        publisher: Arc<dyn Publish>,
    ) -> std::io::Result<Arc<Self>> {
        let (queue, inbox) = mpsc::channel(settings.queue.max(1));
        let engine = Arc::new(Self {
            current: RwLock::default(),
            reload: Mutex::default(),
            metrics: Mutex::default(),
            queue,
            publisher,
            seq: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&engine);
        let handle = Handle::current();
        std::thread::Builder::new()
            .name("eddy-rules".into())
            .spawn(move || run(weak, inbox, handle, settings))?;
        Ok(engine)
    }

    fn current(&self) -> Arc<RuleSet> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the loaded rules by `definitions` (all stored rules; disabled ones are
    /// kept for their counters only). Unchanged rules keep their compiled form; a rule
    /// that does not compile is left out and returned with its error. Messages already
    /// queued are evaluated by the new rules.
    pub fn load(&self, definitions: &[RuleDefinition]) -> Vec<(String, DefinitionError)> {
        let _reloading = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        let mut metrics = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        metrics.retain(|name, _| definitions.iter().any(|d| &d.name == name));
        let previous = self.current();
        let (set, failed) = RuleSet::build(definitions, &previous, &mut |name| {
            Arc::clone(metrics.entry(name.to_owned()).or_default())
        });
        for d in definitions {
            metrics.entry(d.name.clone()).or_default();
        }
        drop(metrics);
        tracing::info!(
            rules = set.rules.len(),
            filters = set.groups.len(),
            failed = failed.len(),
            "rules loaded"
        );
        for (name, error) in &failed {
            tracing::error!(rule = %name, %error, "rule not loaded");
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        failed
    }

    /// Checks a definition as [`load`](Self::load) would, without loading it.
    pub fn check(definition: &RuleDefinition) -> Result<(), DefinitionError> {
        LoadedRule::compile(definition, Arc::default()).map(drop)
    }

    /// A rule's counters, if it is stored (enabled or not).
    pub fn counts(&self, rule: &str) -> Option<RuleCounts> {
        let metrics = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        metrics.get(rule).map(|m| m.counts())
    }

    fn all_metrics(&self) -> Vec<(String, Arc<RuleMetrics>)> {
        let metrics = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = metrics
            .iter()
            .map(|(n, m)| (n.clone(), Arc::clone(m)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The per-rule metrics, to register with the hub's Prometheus registry.
    pub fn collector(self: &Arc<Self>) -> Box<dyn prometheus_client::collector::Collector> {
        Box::new(metrics::RulesCollector(Arc::clone(self)))
    }

    /// Evaluates one flushed batch of messages with the rules loaded now.
    fn process(&self, offered: &[Offered], handle: &Handle) {
        let set = self.current();
        // Per FROM group hit, in the order first hit (so output order follows input order
        // as far as it can): its batch and its oldest message's acceptance time.
        let mut hit: Vec<(usize, MessageBatchBuilder, i64)> = Vec::new();
        let mut position: HashMap<usize, usize> = HashMap::new();
        for o in offered {
            set.index.for_each_match(&o.message.topic, |&group| {
                let at = *position.entry(group).or_insert_with(|| {
                    hit.push((
                        group,
                        MessageBatchBuilder::with_capacity(offered.len()),
                        o.message.received_at_ms,
                    ));
                    hit.len() - 1
                });
                hit[at].1.append(&o.message, o.client_ip, o.seq);
            });
        }
        for (group, mut builder, oldest_ms) in hit {
            let batch = builder.finish();
            for &rule in &set.groups[group].rules {
                self.run_rule(&set.rules[rule], &batch, oldest_ms, handle);
            }
        }
    }

    fn run_rule(&self, rule: &LoadedRule, batch: &MessageBatch, oldest_ms: i64, handle: &Handle) {
        let result = rule.compiled.run_with_qos(batch);
        rule.collect_decode_stats();
        let (output, qos) = match result {
            Ok(output) => output,
            Err(error) => {
                rule.metrics.evaluation_failed(batch.num_rows() as u64);
                tracing::warn!(rule = %rule.definition.name, %error, rows = batch.num_rows(), "rule evaluation failed");
                return;
            }
        };
        rule.metrics.passed(output.num_rows() as u64);
        if output.num_rows() > 0 {
            let rows = Outputs::new(&output, &qos, &rule.actions, &rule.error_actions);
            let all: Vec<usize> = (0..rows.payloads.len()).collect();
            let failed = self.act(rule, &rule.actions, &rows, &all, handle);
            if !failed.is_empty() && !rule.error_actions.is_empty() {
                self.act(rule, &rule.error_actions, &rows, &failed, handle);
            }
        }
        let waited_ms = eddy_core::time::unix_now_ms().saturating_sub(oldest_ms);
        rule.metrics.latency(waited_ms as f64 / 1000.0);
    }

    /// Runs `actions` on the output rows `which`; returns the rows an action failed to
    /// take (each once, however many actions failed it).
    fn act(
        &self,
        rule: &LoadedRule,
        actions: &[Action],
        rows: &Outputs,
        which: &[usize],
        handle: &Handle,
    ) -> Vec<usize> {
        let mut failed = std::collections::BTreeSet::new();
        let publisher = format!("{RULE_PUBLISHER_PREFIX}{}", rule.definition.name);
        for action in actions {
            match action {
                Action::Republish { topic, qos } => {
                    let now_ms = eddy_core::time::unix_now_ms();
                    rule.metrics.action_given(which.len() as u64);
                    let mut errors = 0u64;
                    // Counted at once, so the counters never lag what was published.
                    let mut report = |row: usize, error: &dyn std::fmt::Display| {
                        errors += 1;
                        rule.metrics.action_failed(1);
                        if errors == 1 {
                            tracing::warn!(rule = %rule.definition.name, topic = topic.as_str(), %error, "republish failed");
                        }
                        failed.insert(row);
                    };
                    let mut sends = Vec::with_capacity(which.len());
                    for &row in which {
                        match topic.render(rows.json.as_ref().map(|j| &j[row])) {
                            Ok(to) => sends.push((row, to)),
                            Err(error) => report(row, &error),
                        }
                    }
                    let results = handle.block_on(futures::future::join_all(sends.iter().map(
                        |(row, to)| {
                            self.publisher.publish(Message {
                                topic: to.clone(),
                                payload: rows.payloads[*row].clone(),
                                qos: qos.unwrap_or(rows.qos[*row]),
                                retain: false,
                                publisher: publisher.clone(),
                                received_at_ms: now_ms,
                                properties: None,
                            })
                        },
                    )));
                    for ((row, _), result) in sends.iter().zip(results) {
                        if let Err(error) = result {
                            report(*row, &error);
                        }
                    }
                }
            }
        }
        failed.into_iter().collect()
    }
}

/// A rule's output rows as its actions take them.
struct Outputs {
    payloads: Vec<bytes::Bytes>,
    /// The QoS of the message each row came from.
    qos: Vec<eddy_core::QoS>,
    /// The rows as JSON objects, when an action's topic has variables.
    json: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
}

impl Outputs {
    fn new(
        output: &arrow::array::RecordBatch,
        qos: &arrow::array::UInt8Array,
        actions: &[Action],
        error_actions: &[Action],
    ) -> Self {
        let needs_json = actions.iter().chain(error_actions).any(|a| match a {
            Action::Republish { topic, .. } => topic.has_variables(),
        });
        Self {
            payloads: row_payloads(output),
            qos: qos
                .values()
                .iter()
                .map(|q| eddy_core::QoS::from_u8(*q).unwrap_or(eddy_core::QoS::AtMostOnce))
                .collect(),
            json: needs_json.then(|| crate::rows_as_json(output)),
        }
    }
}

impl MessageTap for RuleEngine {
    fn offer(&self, message: &Arc<Message>, client_ip: Option<IpAddr>) -> Option<Backpressure> {
        if message.publisher.starts_with(RULE_PUBLISHER_PREFIX) {
            return None;
        }
        if !self.current().index.matches_any(&message.topic) {
            return None;
        }
        let offered = Offered {
            message: Arc::clone(message),
            client_ip,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        };
        match self.queue.try_send(offered) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(offered)) => {
                let queue = self.queue.clone();
                Some(Box::pin(async move {
                    if queue.send(offered).await.is_err() {
                        tracing::error!("rule engine stopped: a message was not evaluated");
                    }
                }))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("rule engine stopped: a message was not evaluated");
                None
            }
        }
    }
}

/// The engine's thread: collects up to `batch_rows` messages or for `batch_time` after
/// the first, then evaluates them.
fn run(
    engine: Weak<RuleEngine>,
    mut inbox: mpsc::Receiver<Offered>,
    handle: Handle,
    settings: EngineSettings,
) {
    let rows = settings.batch_rows.max(1);
    let mut buffer = Vec::with_capacity(rows);
    loop {
        buffer.clear();
        if handle.block_on(inbox.recv_many(&mut buffer, rows)) == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + settings.batch_time;
        while buffer.len() < rows {
            let room = rows - buffer.len();
            let more = handle.block_on(async {
                tokio::time::timeout_at(deadline, inbox.recv_many(&mut buffer, room)).await
            });
            if !matches!(more, Ok(n) if n > 0) {
                break;
            }
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        engine.process(&buffer, &handle);
    }
}
