//! The [`Delivery`] service: opening (recovery by scanning the log), the per-queue
//! workers' lifecycle and the read-only views (status, counts, metrics).
//!
//! ```text
//!  Delivery ── workers: queue → { target (watch), stop (watch), task }
//!     │                                 │ the task owns an Arc<Inner>
//!     └── Arc<Inner>: log, tables, settings, queue states, append lock
//! ```
//!
//! Dropping the last [`Delivery`] drops the workers' stop senders, which stops them as
//! [`Delivery::shutdown`] does (without waiting).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use eddy_queue::{Log, Table};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::keys;
use crate::metrics::{DeliveryCollector, QueueCounts};
use crate::state::{Counters, QueueState};
use crate::worker::{self, Target};
use crate::{
    DEAD_LETTER_TABLE, DELIVERY_TABLE, DeliveryOpenError, DeliveryServiceError, DeliverySettings,
    Destination, QueueId,
};

/// What the workers share with the service.
#[derive(Debug)]
pub(crate) struct Inner {
    pub log: Log,
    /// Pending entries.
    pub entries: Table,
    pub dead: Table,
    pub settings: DeliverySettings,
    queues: RwLock<BTreeMap<QueueId, Arc<QueueState>>>,
    /// Held while seqs are given out and their batch submitted, so the log applies each
    /// queue's entries in seq order.
    pub append: tokio::sync::Mutex<()>,
    /// Held by a redrive from reading dead letters to committing their move.
    pub redrive: tokio::sync::Mutex<()>,
    /// True once [`Delivery::shutdown`] ran: blocked producers give up.
    pub closed: watch::Sender<bool>,
}

impl Inner {
    /// The state of `id`, created empty the first time.
    pub fn queue(&self, id: &QueueId) -> Arc<QueueState> {
        if let Some(q) = self.existing(id) {
            return q;
        }
        let mut queues = self.queues.write().unwrap_or_else(PoisonError::into_inner);
        queues
            .entry(id.clone())
            .or_insert_with(|| Arc::new(QueueState::new(id.clone(), Counters::default())))
            .clone()
    }

    pub fn existing(&self, id: &QueueId) -> Option<Arc<QueueState>> {
        let queues = self.queues.read().unwrap_or_else(PoisonError::into_inner);
        queues.get(id).cloned()
    }

    /// Every queue known since opening, in id order.
    pub fn all_queues(&self) -> Vec<Arc<QueueState>> {
        let queues = self.queues.read().unwrap_or_else(PoisonError::into_inner);
        queues.values().cloned().collect()
    }
}

/// One queue at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStatus {
    pub queue: QueueId,
    pub pending_rows: u64,
    pub pending_entries: u64,
    pub pending_bytes: u64,
    pub dead_letters: u64,
    /// Whether a worker is delivering it.
    pub attached: bool,
}

#[derive(Debug)]
struct WorkerSlot {
    target: watch::Sender<Arc<Target>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WorkerSlot {
    fn running(&self) -> bool {
        !*self.stop.borrow() && !self.task.is_finished()
    }
}

/// The delivery layer: durable queues, one worker per attached queue. Share it as
/// `Arc<Delivery>`.
#[derive(Debug)]
pub struct Delivery {
    pub(crate) inner: Arc<Inner>,
    workers: Mutex<HashMap<QueueId, WorkerSlot>>,
    runtime: Handle,
}

impl Delivery {
    /// Opens the delivery layer on `log` (the tables `delivery` and `dead-letters`) and
    /// recovers every queue's counters by scanning them. Must be called inside a tokio
    /// runtime (the workers run on it). No worker runs until [`Delivery::attach`].
    pub fn open(log: &Log, settings: DeliverySettings) -> Result<Arc<Self>, DeliveryOpenError> {
        let runtime = Handle::try_current().map_err(|_| DeliveryServiceError::NoRuntime)?;
        let entries = log.table(DELIVERY_TABLE)?;
        let dead = log.table(DEAD_LETTER_TABLE)?;
        let mut recovered: BTreeMap<QueueId, Counters> = BTreeMap::new();
        for item in entries.iter() {
            let (key, value) = item?;
            let (queue, seq) = keys::parse_key(&key)?;
            let c = recovered.entry(queue).or_default();
            if c.entries == 0 {
                c.head = seq;
            }
            c.rows += keys::entry_rows(&value)?;
            c.bytes += (key.len() + value.len()) as u64;
            c.entries += 1;
            c.next = seq + 1;
        }
        for item in dead.iter() {
            let (key, _) = item?;
            let (queue, seq) = keys::parse_key(&key)?;
            let c = recovered.entry(queue).or_default();
            c.dead_letters += 1;
            // Seqs are never reused while a dead letter carries one.
            c.next = c.next.max(seq + 1);
        }
        let queues = recovered
            .into_iter()
            .map(|(id, mut c)| {
                if c.entries == 0 {
                    c.head = c.next;
                }
                c.visible = c.next;
                if c.entries > 0 || c.dead_letters > 0 {
                    tracing::info!(
                        queue = %id, pending_rows = c.rows, dead_letters = c.dead_letters,
                        "delivery queue recovered"
                    );
                }
                (id.clone(), Arc::new(QueueState::new(id, c)))
            })
            .collect();
        let inner = Arc::new(Inner {
            log: log.clone(),
            entries,
            dead,
            settings,
            queues: RwLock::new(queues),
            append: tokio::sync::Mutex::new(()),
            redrive: tokio::sync::Mutex::new(()),
            closed: watch::Sender::new(false),
        });
        Ok(Arc::new(Self {
            inner,
            workers: Mutex::new(HashMap::new()),
            runtime,
        }))
    }

    pub fn settings(&self) -> &DeliverySettings {
        &self.inner.settings
    }

    fn workers(&self) -> MutexGuard<'_, HashMap<QueueId, WorkerSlot>> {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts delivering `queue` to `destination`, sending what fails for good to
    /// `error_queues` (other queues, with their own workers). If a worker already runs,
    /// it takes the new destination and error queues from its next attempt on. A worker
    /// still finishing an attempt after [`Delivery::detach`] is waited for first, so a
    /// queue never has two.
    pub fn attach(
        &self,
        queue: QueueId,
        destination: Arc<dyn Destination>,
        error_queues: Vec<QueueId>,
    ) {
        if *self.inner.closed.borrow() {
            tracing::warn!(%queue, "delivery is shut down: not attaching");
            return;
        }
        let error_queues: Vec<QueueId> = error_queues
            .into_iter()
            .filter(|e| {
                let own = *e == queue;
                if own {
                    tracing::warn!(%queue, "a queue cannot be its own error queue: ignored");
                }
                !own
            })
            .collect();
        let target = Arc::new(Target {
            destination,
            error_queues,
        });
        let mut workers = self.workers();
        if let Some(slot) = workers.get(&queue).filter(|s| s.running()) {
            slot.target.send_replace(target);
            return;
        }
        let previous = workers.remove(&queue).map(|slot| slot.task);
        let state = self.inner.queue(&queue);
        let (target_tx, target_rx) = watch::channel(target);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = self.runtime.spawn(worker::run(
            self.inner.clone(),
            state,
            target_rx,
            stop_rx,
            previous,
        ));
        tracing::debug!(%queue, "delivery worker attached");
        workers.insert(
            queue,
            WorkerSlot {
                target: target_tx,
                stop: stop_tx,
                task,
            },
        );
    }

    /// Stops `queue`'s worker once its current attempt returns (a backoff or an idle wait
    /// ends at once). Its entries stay in the log for the next [`Delivery::attach`].
    pub fn detach(&self, queue: &QueueId) {
        if let Some(slot) = self.workers().get(queue) {
            slot.stop.send_replace(true);
            tracing::debug!(%queue, "delivery worker detached");
        }
    }

    /// The queues with a running worker, in id order.
    pub fn attached(&self) -> Vec<QueueId> {
        let mut attached: Vec<QueueId> = self
            .workers()
            .iter()
            .filter(|(_, slot)| slot.running())
            .map(|(q, _)| q.clone())
            .collect();
        attached.sort();
        attached
    }

    /// Every queue known since opening (recovered, enqueued to or attached), in id order.
    pub fn queues(&self) -> Vec<QueueStatus> {
        let queues = self.inner.all_queues();
        let workers = self.workers();
        queues
            .into_iter()
            .map(|q| {
                let c = q.counters();
                QueueStatus {
                    attached: workers.get(&q.id).is_some_and(WorkerSlot::running),
                    queue: q.id.clone(),
                    pending_rows: c.rows,
                    pending_entries: c.entries,
                    pending_bytes: c.bytes,
                    dead_letters: c.dead_letters,
                }
            })
            .collect()
    }

    /// `queue`'s counters, if the queue is known.
    pub fn counts(&self, queue: &QueueId) -> Option<QueueCounts> {
        self.inner.existing(queue).map(|q| QueueCounts::of(&q))
    }

    /// The `eddy_delivery_…` metric families, for `Registry::register_collector`.
    pub fn collector(&self) -> DeliveryCollector {
        DeliveryCollector(self.inner.clone())
    }

    /// Stops every worker after its current attempt and waits for them; producers
    /// blocked on a full queue get [`DeliveryServiceError::ShutDown`]. Nothing pending
    /// is lost: it is delivered after the next open and attach.
    pub async fn shutdown(&self) {
        self.inner.closed.send_replace(true);
        let slots: Vec<WorkerSlot> = self.workers().drain().map(|(_, slot)| slot).collect();
        for slot in &slots {
            slot.stop.send_replace(true);
        }
        for slot in slots {
            if let Err(err) = slot.task.await {
                tracing::error!(error = %err, "delivery worker ended abnormally");
            }
        }
    }
}
