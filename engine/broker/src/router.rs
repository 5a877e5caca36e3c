//! Who receives a message: the subscription index and the table of live clients.
//!
//! Subscriptions sit in a trie over topic levels (`+` and `#` as their own edges), so a
//! message finds its subscribers in time proportional to its topic's depth, not to the
//! number of subscriptions. Each live client has a bounded mailbox; routing waits for room
//! (back-pressure on the publisher) rather than dropping.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use eddy_core::{QoS, Topic, TopicFilter};
use tokio::sync::{mpsc, oneshot};

use crate::connection::ToWriter;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    plus: Option<Box<Node>>,
    /// Subscribers of `…/#` at this level.
    hash: HashMap<Arc<str>, QoS>,
    /// Subscribers of exactly this level.
    here: HashMap<Arc<str>, QoS>,
}

impl Node {
    fn insert(&mut self, mut levels: std::str::Split<'_, char>, client: Arc<str>, qos: QoS) {
        match levels.next() {
            None => {
                self.here.insert(client, qos);
            }
            Some("#") => {
                self.hash.insert(client, qos);
            }
            Some("+") => self
                .plus
                .get_or_insert_with(Box::default)
                .insert(levels, client, qos),
            Some(level) => self
                .children
                .entry(level.to_owned())
                .or_default()
                .insert(levels, client, qos),
        }
    }

    /// Removes a subscription; returns whether this node is now empty.
    fn remove(&mut self, mut levels: std::str::Split<'_, char>, client: &str) -> bool {
        match levels.next() {
            None => {
                self.here.remove(client);
            }
            Some("#") => {
                self.hash.remove(client);
            }
            Some("+") => {
                if let Some(plus) = &mut self.plus
                    && plus.remove(levels, client)
                {
                    self.plus = None;
                }
            }
            Some(level) => {
                if let Some(child) = self.children.get_mut(level)
                    && child.remove(levels, client)
                {
                    self.children.remove(level);
                }
            }
        }
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_empty()
            && self.here.is_empty()
    }

    fn collect(&self, levels: &[&str], first: bool, out: &mut HashMap<Arc<str>, QoS>) {
        let mut add = |subs: &HashMap<Arc<str>, QoS>| {
            for (client, qos) in subs {
                let entry = out.entry(client.clone()).or_insert(*qos);
                *entry = (*entry).max(*qos);
            }
        };
        // `$` topics are not matched by a wildcard in the first level.
        let system = first && levels.first().is_some_and(|l| l.starts_with('$'));
        if !system {
            add(&self.hash);
        }
        let Some((level, rest)) = levels.split_first() else {
            add(&self.here);
            return;
        };
        if let Some(child) = self.children.get(*level) {
            child.collect(rest, false, out);
        }
        if !system && let Some(plus) = &self.plus {
            plus.collect(rest, false, out);
        }
    }
}

/// The filters one connection subscribed to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subscriptions(Arc<Mutex<HashSet<TopicFilter>>>);

impl Subscriptions {
    pub fn insert(&self, filter: TopicFilter) {
        lock(&self.0).insert(filter);
    }

    pub fn remove(&self, filter: &TopicFilter) {
        lock(&self.0).remove(filter);
    }

    pub fn contains(&self, filter: &TopicFilter) -> bool {
        lock(&self.0).contains(filter)
    }

    pub fn len(&self) -> usize {
        lock(&self.0).len()
    }

    fn take(&self) -> HashSet<TopicFilter> {
        std::mem::take(&mut *lock(&self.0))
    }
}

/// A live client's connection, as the router reaches it.
#[derive(Debug, Clone)]
pub(crate) struct ClientHandle {
    pub connection_id: u64,
    pub mailbox: mpsc::Sender<ToWriter>,
    pub kick: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    pub subscriptions: Subscriptions,
}

/// Subscriptions and live clients.
#[derive(Debug, Default)]
pub struct Router {
    tree: RwLock<Node>,
    clients: Mutex<HashMap<Arc<str>, ClientHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Router {
    pub fn subscribe(&self, client: &Arc<str>, filter: &TopicFilter, qos: QoS) {
        let mut tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
        tree.insert(filter.levels(), client.clone(), qos);
    }

    pub fn unsubscribe(&self, client: &str, filter: &TopicFilter) {
        let mut tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
        tree.remove(filter.levels(), client);
    }

    /// Every subscriber of `topic`, each once, with the highest QoS it subscribed with.
    pub fn subscribers(&self, topic: &Topic) -> HashMap<Arc<str>, QoS> {
        let levels: Vec<&str> = topic.levels().collect();
        let mut out = HashMap::new();
        self.tree
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .collect(&levels, true, &mut out);
        out
    }

    /// Registers a client's connection; returns the one it replaces, to be kicked. Sessions
    /// are clean (persistent sessions come with the durable queues), so the replaced
    /// connection's subscriptions go with it.
    ///
    /// `on_attached` runs under the table's lock, so events it emits are ordered exactly
    /// as connections replace one another.
    pub(crate) fn attach(
        &self,
        client: Arc<str>,
        handle: ClientHandle,
        on_attached: impl FnOnce(),
    ) -> Option<ClientHandle> {
        let previous = {
            let mut clients = lock(&self.clients);
            let previous = clients.insert(client.clone(), handle);
            on_attached();
            previous
        };
        if let Some(previous) = &previous {
            self.drop_subscriptions(&client, &previous.subscriptions);
        }
        previous
    }

    /// Removes a client's connection and its subscriptions, unless a newer connection has
    /// replaced it; returns whether it was still the current one. `on_detached` runs under
    /// the table's lock, only when it was.
    pub(crate) fn detach(
        &self,
        client: &str,
        connection_id: u64,
        on_detached: impl FnOnce(),
    ) -> bool {
        let removed = {
            let mut clients = lock(&self.clients);
            if clients
                .get(client)
                .is_some_and(|h| h.connection_id == connection_id)
            {
                on_detached();
                clients.remove(client)
            } else {
                None
            }
        };
        match removed {
            Some(handle) => {
                self.drop_subscriptions(client, &handle.subscriptions);
                true
            }
            None => false,
        }
    }

    fn drop_subscriptions(&self, client: &str, subscriptions: &Subscriptions) {
        for filter in subscriptions.take() {
            self.unsubscribe(client, &filter);
        }
    }

    pub(crate) fn mailbox(&self, client: &str) -> Option<mpsc::Sender<ToWriter>> {
        lock(&self.clients).get(client).map(|h| h.mailbox.clone())
    }

    /// How many clients are connected.
    pub fn connected(&self) -> usize {
        lock(&self.clients).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(router: &Router, topic: &str) -> Vec<(String, QoS)> {
        let mut v: Vec<_> = router
            .subscribers(&Topic::parse(topic).unwrap())
            .into_iter()
            .map(|(c, q)| (c.to_string(), q))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn wildcards_and_overlaps() {
        let r = Router::default();
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        let f = |s: &str| TopicFilter::parse(s).unwrap();
        r.subscribe(&a, &f("p/d/+"), QoS::AtMostOnce);
        r.subscribe(&a, &f("p/d/event"), QoS::AtLeastOnce);
        r.subscribe(&b, &f("p/#"), QoS::AtMostOnce);
        r.subscribe(&b, &f("#"), QoS::AtMostOnce);
        assert_eq!(
            subs(&r, "p/d/event"),
            [
                ("a".into(), QoS::AtLeastOnce),
                ("b".into(), QoS::AtMostOnce)
            ]
        );
        assert_eq!(subs(&r, "p"), [("b".into(), QoS::AtMostOnce)]);
        assert_eq!(subs(&r, "$sys/p"), []);
        r.subscribe(&a, &f("$sys/+"), QoS::AtMostOnce);
        assert_eq!(subs(&r, "$sys/p"), [("a".into(), QoS::AtMostOnce)]);
        r.unsubscribe("b", &f("p/#"));
        r.unsubscribe("b", &f("#"));
        r.unsubscribe("a", &f("p/d/event"));
        assert_eq!(subs(&r, "p/d/event"), [("a".into(), QoS::AtMostOnce)]);
        r.unsubscribe("a", &f("p/d/+"));
        assert_eq!(subs(&r, "p/d/event"), []);
        assert!(
            !r.tree.read().unwrap().children.contains_key("p"),
            "empty nodes are pruned"
        );
    }
}
