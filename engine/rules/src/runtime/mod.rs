//! The running rule engine: it takes accepted messages from the broker (as its
//! [`MessageTap`]), batches them, evaluates the loaded rules and runs their actions.
//!
//! ```text
//!  broker ──offer──▶ index check (no rule: nothing queued) ──▶ bounded queue (full: the
//!                                                              publisher waits)
//!  "eddy-rules" thread: N rows or T time ──▶ per FROM group: MessageBatch
//!        └─▶ each rule of the group: decode → WHERE → SELECT ──▶ one Envelope per action
//!  every envelope of the batch ──▶ delivery: one synced commit into the action queues
//!        └─▶ per queue a worker ──▶ the action's destination plugin (bind.rs)
//! ```
//!
//! Rules are swapped in whole ([`RuleEngine::load`]): messages already queued are
//! evaluated by the rules loaded when their batch is flushed, so a replace never drops
//! them. Messages a rule republishes are not fed to rules again (no loops).
//!
//! Nothing acknowledged is lost: a QoS ≥ 1 message's acknowledgement waits (through the
//! `handover` of [`MessageTap::offer`]) until its batch has been evaluated and the
//! output committed (fsync) into the action queues; from there delivery is at-least-once,
//! retried, then error action and dead letters. The engine's input queue itself is in
//! memory: a crash loses only messages not yet acknowledged (and QoS 0 ones).

mod bind;

mod actions;
mod dry_run;
mod metrics;
mod set;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use eddy_core::destination::{Envelope, Row, RowMeta};
use eddy_core::{Message, MessageTap, QoS};
use eddy_delivery::{Delivery, QueueId};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

pub use actions::{Action, ActionError, MAX_ACTIONS, TopicTemplate, parse_actions, row_payloads};
pub use bind::{DestinationFactory, DestinationFuture, action_queue, error_queue};
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
    /// For QoS ≥ 1: told once the rules' output for it is in the action queues (its
    /// publisher's acknowledgement waits for that).
    done: Option<oneshot::Sender<Result<(), String>>>,
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
    bindings: bind::Bindings,
    handle: Handle,
    /// Random per start: with the message's seq, the rows' de-duplication ids.
    boot: u64,
    seq: AtomicU64,
}

impl RuleEngine {
    /// Starts the engine's thread; actions' rows go to `delivery`, whose queues deliver
    /// to destinations `factory` starts. Must be called inside a tokio runtime, which the
    /// engine then uses for its timers and commits. The thread ends when the engine is
    /// dropped.
    pub fn start(
        settings: EngineSettings,
        delivery: Arc<Delivery>,
        factory: Arc<dyn DestinationFactory>,
    ) -> std::io::Result<Arc<Self>> {
        let (queue, inbox) = mpsc::channel(settings.queue.max(1));
        let engine = Arc::new(Self {
            current: RwLock::default(),
            reload: Mutex::default(),
            metrics: Mutex::default(),
            queue,
            bindings: bind::Bindings::new(delivery, factory),
            handle: Handle::current(),
            boot: rand::random(),
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
        self.bindings.sync(&set, &self.handle);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        failed
    }

    /// Checks a definition as [`load`](Self::load) would, without loading it.
    pub fn check(definition: &RuleDefinition) -> Result<(), DefinitionError> {
        LoadedRule::compile(definition, Arc::default()).map(drop)
    }

    /// A rule's counters, if it is stored (enabled or not). `action_errors` counts the
    /// rows its action queues gave up on (dead-lettered after retries, or rejected).
    pub fn counts(&self, rule: &str) -> Option<RuleCounts> {
        let metrics = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        let mut counts = metrics.get(rule).map(|m| m.counts())?;
        drop(metrics);
        let delivery = self.bindings.delivery();
        counts.action_errors += self
            .bindings
            .action_queues_of(rule)
            .iter()
            .filter_map(|q| delivery.counts(q))
            .map(|c| c.failed_rows)
            .sum::<u64>();
        Some(counts)
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

    /// Evaluates one flushed batch of messages with the rules loaded now, then tells the
    /// publishers waiting for their acknowledgement.
    fn process(&self, offered: &mut [Offered], handle: &Handle) {
        let result = self.evaluate(offered, handle);
        for o in offered.iter_mut() {
            if let Some(done) = o.done.take() {
                let _ = done.send(result.clone());
            }
        }
    }

    /// Evaluates a batch and commits its output into the action queues (synced).
    fn evaluate(&self, offered: &[Offered], handle: &Handle) -> Result<(), String> {
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
        let mut outbox = Vec::new();
        let mut evaluated = Vec::new();
        for (group, mut builder, oldest_ms) in hit {
            let batch = builder.finish();
            for &rule in &set.groups[group].rules {
                let rule = &set.rules[rule];
                self.run_rule(rule, &batch, &mut outbox);
                evaluated.push((rule, oldest_ms));
            }
        }
        let mut result = Ok(());
        if !outbox.is_empty() {
            let rows: usize = outbox
                .iter()
                .map(|(_, e): &(QueueId, Envelope)| e.len())
                .sum();
            if let Err(error) = handle.block_on(self.bindings.delivery().enqueue(outbox)) {
                tracing::error!(%error, rows, "rule output could not be queued for its actions");
                result = Err(format!("rule output could not be queued: {error}"));
            }
        }
        let now_ms = eddy_core::time::unix_now_ms();
        for (rule, oldest_ms) in evaluated {
            rule.metrics
                .latency(now_ms.saturating_sub(oldest_ms) as f64 / 1000.0);
        }
        result
    }

    /// Evaluates one rule over one batch; its output rows go to `outbox`, one envelope
    /// per action.
    fn run_rule(
        &self,
        rule: &LoadedRule,
        batch: &MessageBatch,
        outbox: &mut Vec<(QueueId, Envelope)>,
    ) {
        let result = rule.compiled.run_selected(batch);
        rule.collect_decode_stats();
        let (output, sources) = match result {
            Ok(output) => output,
            Err(error) => {
                rule.metrics.evaluation_failed(batch.num_rows() as u64);
                tracing::warn!(rule = %rule.definition.name, %error, rows = batch.num_rows(), "rule evaluation failed");
                return;
            }
        };
        rule.metrics.passed(output.num_rows() as u64);
        if output.num_rows() == 0 {
            return;
        }
        let envelope = envelope(&output, &sources, batch, self.boot);
        let name = &rule.definition.name;
        for i in 0..rule.actions.len() {
            rule.metrics.action_given(envelope.len() as u64);
            outbox.push((action_queue(name, i), envelope.clone()));
        }
    }
}

/// A rule's output rows with their ids and the metadata of the messages they came from.
fn envelope(
    output: &arrow::array::RecordBatch,
    sources: &[usize],
    batch: &MessageBatch,
    boot: u64,
) -> Envelope {
    use arrow::array::AsArray;
    use arrow::datatypes::{Int64Type, UInt8Type, UInt64Type};
    let (payloads, json) = row_payloads(output);
    let input = batch.record_batch();
    let text = |column: usize| input.column(column).as_string::<i32>();
    let (topic, product, device) = (
        text(crate::batch::TOPIC),
        text(crate::batch::PRODUCT_ID),
        text(crate::batch::DEVICE_NAME),
    );
    let qos = input.column(crate::batch::QOS).as_primitive::<UInt8Type>();
    let at = input
        .column(crate::batch::TIMESTAMP_MS)
        .as_primitive::<Int64Type>();
    let seq = input.column(crate::batch::SEQ).as_primitive::<UInt64Type>();
    let nullable = |a: &arrow::array::StringArray, i: usize| {
        if a.is_null(i) {
            String::new()
        } else {
            a.value(i).to_owned()
        }
    };
    use arrow::array::Array as _;
    let rows = sources
        .iter()
        .zip(payloads)
        .map(|(&i, payload)| Row {
            id: format!("{boot:016x}-{}", seq.value(i)),
            // No copy: the Bytes were made from a Vec and are not shared.
            payload: Vec::from(payload),
            json,
            meta: RowMeta {
                topic: topic.value(i).to_owned(),
                product_id: nullable(product, i),
                device_name: nullable(device, i),
                qos: qos.value(i),
                seq: seq.value(i),
                timestamp_ms: u64::try_from(at.value(i)).unwrap_or(0),
            },
        })
        .collect();
    Envelope {
        columns: output
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        rows,
    }
}

impl MessageTap for RuleEngine {
    fn offer(&self, message: &Arc<Message>, client_ip: Option<IpAddr>) -> eddy_core::Offered {
        let mut out = eddy_core::Offered::default();
        if message.publisher.starts_with(RULE_PUBLISHER_PREFIX) {
            return out;
        }
        if !self.current().index.matches_any(&message.topic) {
            return out;
        }
        // A QoS ≥ 1 message is acknowledged once the rules' output is durable.
        let done = (message.qos != QoS::AtMostOnce).then(|| {
            let (done, handover) = oneshot::channel();
            out.handover = Some(Box::pin(async move {
                handover
                    .await
                    .unwrap_or_else(|_| Err("the rule engine stopped".into()))
            }));
            done
        });
        let offered = Offered {
            message: Arc::clone(message),
            client_ip,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            done,
        };
        match self.queue.try_send(offered) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(offered)) => {
                let queue = self.queue.clone();
                out.backpressure = Some(Box::pin(async move {
                    if queue.send(offered).await.is_err() {
                        tracing::error!("rule engine stopped: a message was not evaluated");
                    }
                }));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("rule engine stopped: a message was not evaluated");
            }
        }
        out
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
        engine.process(&mut buffer, &handle);
    }
}
