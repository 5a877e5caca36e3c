//! Which destination each action queue delivers to. A rule's action `i` owns the durable
//! queue `rule/<rule>/<i>`, its error action `i` the queue `rule/<rule>/error/<i>`; the
//! delivery layer runs one worker per queue, and this module keeps those workers attached
//! to destinations running the loaded rules' actions.
//!
//! ```text
//! load(rules) ──▶ wanted bindings ──▶ new or changed: factory.start(action) (async, a
//!                                     plugin instance) ──▶ delivery.attach(queue, …)
//!                                 └─▶ gone (rule deleted or disabled): delivery.detach
//!                                     (its entries stay on disk until it comes back)
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use eddy_core::destination::Destination;
use eddy_delivery::{Delivery, QueueId};
use tokio::runtime::Handle;

use super::actions::Action;
use super::set::RuleSet;

/// A destination being started.
pub type DestinationFuture =
    Pin<Box<dyn Future<Output = Result<Arc<dyn Destination>, String>> + Send + 'static>>;

/// Starts the destination that runs one action (the binary implements it with the plugin
/// host; tests with whatever they observe).
pub trait DestinationFactory: Send + Sync + std::fmt::Debug + 'static {
    /// A destination for `action` of `rule`, delivering the queue `queue`.
    fn start(&self, queue: &QueueId, rule: &str, action: &Action) -> DestinationFuture;
}

/// The queue of a rule's action `index`.
pub fn action_queue(rule: &str, index: usize) -> QueueId {
    QueueId::new(format!("rule/{rule}/{index}")).expect("rule names are short and printable")
}

/// The queue of a rule's error action `index`.
pub fn error_queue(rule: &str, index: usize) -> QueueId {
    QueueId::new(format!("rule/{rule}/error/{index}")).expect("rule names are short and printable")
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Binding {
    rule: String,
    action: Action,
    error_queues: Vec<QueueId>,
}

/// The bindings in force, each with the generation that started it (a slow start never
/// overrides a newer one).
#[derive(Debug)]
pub(crate) struct Bindings {
    delivery: Arc<Delivery>,
    factory: Arc<dyn DestinationFactory>,
    current: Arc<Mutex<HashMap<QueueId, (Binding, u64)>>>,
    generation: std::sync::atomic::AtomicU64,
}

impl Bindings {
    pub(crate) fn new(delivery: Arc<Delivery>, factory: Arc<dyn DestinationFactory>) -> Self {
        Self {
            delivery,
            factory,
            current: Arc::default(),
            generation: Default::default(),
        }
    }

    pub(crate) fn delivery(&self) -> &Arc<Delivery> {
        &self.delivery
    }

    /// The action queues (not the error actions' queues) of `rule` now bound: at most
    /// `MAX_ACTIONS` lookups, not a scan of every binding.
    pub(crate) fn action_queues_of(&self, rule: &str) -> Vec<QueueId> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        (0..super::MAX_ACTIONS)
            .map(|i| action_queue(rule, i))
            .filter(|q| current.contains_key(q))
            .collect()
    }

    /// Makes the bindings match `set`'s rules.
    pub(crate) fn sync(&self, set: &RuleSet, handle: &Handle) {
        let mut wanted = HashMap::new();
        for rule in &set.rules {
            let name = &rule.definition.name;
            let errors: Vec<QueueId> = (0..rule.error_actions.len())
                .map(|i| error_queue(name, i))
                .collect();
            for (i, action) in rule.actions.iter().enumerate() {
                let binding = Binding {
                    rule: name.clone(),
                    action: action.clone(),
                    error_queues: errors.clone(),
                };
                wanted.insert(action_queue(name, i), binding);
            }
            for (i, action) in rule.error_actions.iter().enumerate() {
                let binding = Binding {
                    rule: name.clone(),
                    action: action.clone(),
                    error_queues: Vec::new(),
                };
                wanted.insert(error_queue(name, i), binding);
            }
        }
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current.retain(|queue, _| {
            let keep = wanted.contains_key(queue);
            if !keep {
                self.delivery.detach(queue);
            }
            keep
        });
        for (queue, binding) in wanted {
            if current.get(&queue).is_some_and(|(b, _)| *b == binding) {
                continue;
            }
            let generation = self
                .generation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let starting = self.factory.start(&queue, &binding.rule, &binding.action);
            current.insert(queue.clone(), (binding.clone(), generation));
            let registry = Arc::clone(&self.current);
            let delivery = Arc::clone(&self.delivery);
            handle.spawn(async move {
                let destination = match starting.await {
                    Ok(destination) => destination,
                    Err(error) => {
                        tracing::error!(%queue, rule = %binding.rule, %error, "action destination did not start; its rows wait in the queue");
                        return;
                    }
                };
                let current = registry.lock().unwrap_or_else(|p| p.into_inner());
                if current.get(&queue).is_some_and(|(_, g)| *g == generation) {
                    delivery.attach(queue, destination, binding.error_queues);
                }
            });
        }
    }
}
