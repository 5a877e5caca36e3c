//! Who receives a message: the subscription index ([`trie`], plus shared subscriptions)
//! and the table of sessions — connected clients and persistent sessions waiting for
//! theirs. Each live client has a bounded mailbox; routing waits for room (back-pressure
//! on the publisher) rather than dropping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use eddy_core::{QoS, Topic, TopicFilter};
use tokio::sync::{mpsc, oneshot};

use crate::connection::ToWriter;
use crate::session::Persistent;

mod trie;

use trie::Node;
pub use trie::{Delivery, SubOptions};

/// The filters a session subscribed to, with their options.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subscriptions(Arc<Mutex<HashMap<TopicFilter, SubOptions>>>);

impl Subscriptions {
    pub fn insert(&self, filter: TopicFilter, qos: SubOptions) {
        lock(&self.0).insert(filter, qos);
    }

    pub fn remove(&self, filter: &TopicFilter) {
        lock(&self.0).remove(filter);
    }

    pub fn contains(&self, filter: &TopicFilter) -> bool {
        lock(&self.0).contains_key(filter)
    }

    pub fn len(&self) -> usize {
        lock(&self.0).len()
    }

    /// The subscriptions, in filter order (as stored with a persistent session).
    pub fn snapshot(&self) -> Vec<(TopicFilter, SubOptions)> {
        let mut all: Vec<_> = lock(&self.0).iter().map(|(f, q)| (f.clone(), *q)).collect();
        all.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        all
    }

    fn take(&self) -> HashMap<TopicFilter, SubOptions> {
        std::mem::take(&mut *lock(&self.0))
    }
}

/// A live client's connection, as the router reaches it.
#[derive(Debug, Clone)]
pub(crate) struct ClientHandle {
    pub connection_id: u64,
    pub mailbox: mpsc::Sender<ToWriter>,
    /// Ends the connection, with the reason an MQTT 5 client is told.
    pub kick: Arc<Mutex<Option<oneshot::Sender<rmqtt_codec::v5::DisconnectReasonCode>>>>,
}

/// A session: a connected client, or a persistent session waiting for its client.
#[derive(Debug)]
struct Session {
    connection: Option<ClientHandle>,
    subscriptions: Subscriptions,
    persistent: Option<Arc<Persistent>>,
}

/// Where routing finds a subscriber.
#[derive(Debug)]
pub(crate) struct Target {
    /// Its connection's mailbox, when connected.
    pub mailbox: Option<mpsc::Sender<ToWriter>>,
    /// Its durable queue's bookkeeping, for a persistent session.
    pub persistent: Option<Arc<Persistent>>,
}

/// What [`Router::attach`] found and did.
#[derive(Debug)]
pub(crate) struct Attached {
    /// The connection replaced, to be kicked.
    pub previous: Option<ClientHandle>,
    /// The session's subscriptions, carried over when the session resumed.
    pub subscriptions: Subscriptions,
    /// The session's persistence, carried over when it resumed.
    pub persistent: Option<Arc<Persistent>>,
    /// A persistent session resumed (MQTT's "session present").
    pub resumed: bool,
    /// An earlier persistent session of this ClientId ended: its durable state must go.
    pub discarded: Option<Arc<Persistent>>,
}

/// What [`Router::detach`] did.
#[derive(Debug)]
pub(crate) enum Detached {
    /// A newer connection holds the session: nothing changed.
    Replaced,
    /// The session ended with its connection; a persistent one (whose expiry became
    /// zero) leaves durable state to delete.
    Ended(Option<Arc<Persistent>>),
    /// The session is persistent and waits for its client.
    Kept(Arc<Persistent>, Subscriptions),
}

/// The members of one shared subscription (`$share/{group}/{filter}`): each message
/// matching the filter goes to one of them, in turn, preferring connected ones.
#[derive(Debug, Default)]
struct Share {
    members: Vec<(Arc<str>, SubOptions)>,
    next: usize,
}

/// Splits `$share/{group}/{filter}` into the share's name (the whole string) and its
/// filter; `None` for an ordinary filter. A malformed share (empty group, wildcard in
/// the group, no filter) is an error.
pub(crate) fn split_share(filter: &str) -> Option<Result<TopicFilter, ()>> {
    let rest = filter.strip_prefix("$share/")?;
    let Some((group, inner)) = rest.split_once('/') else {
        return Some(Err(()));
    };
    if group.is_empty() || group.contains(['+', '#']) {
        return Some(Err(()));
    }
    Some(TopicFilter::parse(inner).map_err(|_| ()))
}

/// Subscriptions and sessions.
#[derive(Debug, Default)]
pub struct Router {
    tree: RwLock<Node>,
    /// Shared subscriptions: the trie holds share names, `shares` their members.
    shared_tree: RwLock<Node>,
    shares: Mutex<HashMap<Arc<str>, Share>>,
    sessions: Mutex<HashMap<Arc<str>, Session>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Router {
    /// Subscribes `client` to `filter` (a `$share/{group}/{filter}` joins that share;
    /// a malformed one is ignored: callers check with [`split_share`] first).
    pub fn subscribe(&self, client: &Arc<str>, filter: &TopicFilter, qos: SubOptions) {
        match split_share(filter.as_str()) {
            None => {
                let mut tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
                tree.insert(filter.levels(), client.clone(), qos);
            }
            Some(Err(())) => {}
            Some(Ok(inner)) => {
                let name: Arc<str> = Arc::from(filter.as_str());
                let mut shares = lock(&self.shares);
                let share = shares.entry(name.clone()).or_default();
                match share.members.iter_mut().find(|(c, _)| c == client) {
                    Some(member) => member.1 = qos,
                    None => share.members.push((client.clone(), qos)),
                }
                if share.members.len() == 1 {
                    let mut tree = self
                        .shared_tree
                        .write()
                        .unwrap_or_else(PoisonError::into_inner);
                    tree.insert(inner.levels(), name, SubOptions::qos(QoS::AtMostOnce));
                }
            }
        }
    }

    pub fn unsubscribe(&self, client: &str, filter: &TopicFilter) {
        match split_share(filter.as_str()) {
            None => {
                let mut tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
                tree.remove(filter.levels(), client);
            }
            Some(Err(())) => {}
            Some(Ok(inner)) => {
                let mut shares = lock(&self.shares);
                let Some(share) = shares.get_mut(filter.as_str()) else {
                    return;
                };
                share.members.retain(|(c, _)| &**c != client);
                if share.members.is_empty() {
                    shares.remove(filter.as_str());
                    let mut tree = self
                        .shared_tree
                        .write()
                        .unwrap_or_else(PoisonError::into_inner);
                    tree.remove(inner.levels(), filter.as_str());
                }
            }
        }
    }

    /// Every subscriber of `topic`, each once, with the highest QoS it subscribed with.
    pub fn subscribers(&self, topic: &Topic) -> HashMap<Arc<str>, QoS> {
        self.deliveries(topic, "")
            .into_iter()
            .map(|(client, delivery)| (client, delivery.qos))
            .collect()
    }

    /// How a message from `publisher` on `topic` goes to each subscriber; for each
    /// matching shared subscription, to one of its members.
    pub fn deliveries(&self, topic: &Topic, publisher: &str) -> HashMap<Arc<str>, Delivery> {
        let levels: Vec<&str> = topic.levels().collect();
        let mut out = HashMap::new();
        self.tree
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .collect(&levels, true, publisher, &mut out);
        let mut matched = HashMap::new();
        self.shared_tree
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .collect(&levels, true, "", &mut matched);
        if !matched.is_empty() {
            let sessions = lock(&self.sessions);
            let connected =
                |client: &str| sessions.get(client).is_some_and(|s| s.connection.is_some());
            let mut shares = lock(&self.shares);
            for name in matched.into_keys() {
                let Some(share) = shares.get_mut(&name) else {
                    continue;
                };
                let n = share.members.len();
                if n == 0 {
                    continue;
                }
                let start = share.next % n;
                share.next = share.next.wrapping_add(1);
                let pick = (0..n)
                    .map(|i| (start + i) % n)
                    .find(|&i| connected(&share.members[i].0))
                    .unwrap_or(start);
                let (client, options) = &share.members[pick];
                match out.get_mut(client) {
                    Some(delivery) => delivery.merge(options),
                    None => {
                        out.insert(client.clone(), Delivery::of(options));
                    }
                }
            }
        }
        out
    }

    /// Registers a client's connection. A persistent session of the same ClientId resumes
    /// when the new connection asks to keep it (`!clean_start` and `persistent`); any
    /// other earlier session ends, its subscriptions with it. Returns the connection
    /// replaced, to be kicked.
    ///
    /// `on_attached` runs under the table's lock, so events it emits are ordered exactly
    /// as connections replace one another.
    pub(crate) fn attach(
        &self,
        client: Arc<str>,
        handle: ClientHandle,
        clean_start: bool,
        persistent: Option<Arc<Persistent>>,
        on_attached: impl FnOnce(),
    ) -> Attached {
        let (attached, ended) = {
            let mut sessions = lock(&self.sessions);
            let old = sessions.remove(&client);
            let (attached, ended, session) = match old {
                // MQTT 5: a CONNECT with Clean Start 0 resumes a persistent session even
                // when it asks for no expiry; the session then ends with this connection.
                Some(old) if !clean_start && old.persistent.is_some() => {
                    if let Some(kept) = &old.persistent {
                        kept.set_expiry(persistent.as_ref().map_or(Duration::ZERO, |p| p.expiry()));
                    }
                    let attached = Attached {
                        previous: old.connection,
                        subscriptions: old.subscriptions.clone(),
                        persistent: old.persistent.clone(),
                        resumed: true,
                        discarded: None,
                    };
                    let session = Session {
                        connection: Some(handle),
                        subscriptions: old.subscriptions,
                        persistent: old.persistent,
                    };
                    (attached, None, session)
                }
                old => {
                    let subscriptions = Subscriptions::default();
                    let attached = Attached {
                        previous: old.as_ref().and_then(|o| o.connection.clone()),
                        subscriptions: subscriptions.clone(),
                        persistent: persistent.clone(),
                        resumed: false,
                        discarded: old.as_ref().and_then(|o| o.persistent.clone()),
                    };
                    let session = Session {
                        connection: Some(handle),
                        subscriptions,
                        persistent,
                    };
                    (attached, old.map(|o| o.subscriptions), session)
                }
            };
            sessions.insert(client.clone(), session);
            on_attached();
            (attached, ended)
        };
        if let Some(subscriptions) = ended {
            self.drop_subscriptions(&client, &subscriptions);
        }
        if let Some(p) = &attached.persistent {
            p.set_offline(None);
        }
        attached
    }

    /// Ends a connection, unless a newer one has replaced it. A clean session goes with
    /// its subscriptions; a persistent one stays. `on_detached` runs under the table's
    /// lock, only when this was the session's current connection.
    pub(crate) fn detach(
        &self,
        client: &str,
        connection_id: u64,
        on_detached: impl FnOnce(),
    ) -> Detached {
        let ended = {
            let mut sessions = lock(&self.sessions);
            let Some(session) = sessions.get_mut(client).filter(|s| {
                s.connection
                    .as_ref()
                    .is_some_and(|h| h.connection_id == connection_id)
            }) else {
                return Detached::Replaced;
            };
            on_detached();
            if let Some(persistent) = &session.persistent
                && !persistent.expiry().is_zero()
            {
                session.connection = None;
                persistent.set_offline(Some(Instant::now()));
                return Detached::Kept(persistent.clone(), session.subscriptions.clone());
            }
            sessions.remove(client)
        };
        match ended {
            Some(session) => {
                self.drop_subscriptions(client, &session.subscriptions);
                Detached::Ended(session.persistent)
            }
            None => Detached::Ended(None),
        }
    }

    /// Puts back a persistent session found on disk at startup, with no connection.
    pub(crate) fn restore(
        &self,
        client: Arc<str>,
        subscriptions: Vec<(TopicFilter, SubOptions)>,
        persistent: Arc<Persistent>,
    ) {
        let subs = Subscriptions::default();
        for (filter, qos) in subscriptions {
            self.subscribe(&client, &filter, qos);
            subs.insert(filter, qos);
        }
        lock(&self.sessions).insert(
            client,
            Session {
                connection: None,
                subscriptions: subs,
                persistent: Some(persistent),
            },
        );
    }

    /// Ends every persistent session that has waited longer than its expiry; returns
    /// them so their durable state can be deleted.
    pub(crate) fn expire(&self, now: Instant) -> Vec<(Arc<str>, Arc<Persistent>)> {
        let ended: Vec<(Arc<str>, Session)> = {
            let mut sessions = lock(&self.sessions);
            let expired: Vec<Arc<str>> = sessions
                .iter()
                .filter(|(_, s)| {
                    s.connection.is_none() && s.persistent.as_ref().is_some_and(|p| p.expired(now))
                })
                .map(|(c, _)| c.clone())
                .collect();
            expired
                .into_iter()
                .filter_map(|c| sessions.remove(&c).map(|s| (c, s)))
                .collect()
        };
        ended
            .into_iter()
            .filter_map(|(client, session)| {
                self.drop_subscriptions(&client, &session.subscriptions);
                Some((client, session.persistent?))
            })
            .collect()
    }

    fn drop_subscriptions(&self, client: &str, subscriptions: &Subscriptions) {
        for filter in subscriptions.take().into_keys() {
            self.unsubscribe(client, &filter);
        }
    }

    /// Where to deliver to `client`; `None` when it has no session.
    pub(crate) fn target(&self, client: &str) -> Option<Target> {
        lock(&self.sessions).get(client).map(|s| Target {
            mailbox: s.connection.as_ref().map(|h| h.mailbox.clone()),
            persistent: s.persistent.clone(),
        })
    }

    /// Ends `client`'s live connection with `reason`; false when it has none.
    pub(crate) fn kick(&self, client: &str, reason: rmqtt_codec::v5::DisconnectReasonCode) -> bool {
        let kick = lock(&self.sessions)
            .get(client)
            .and_then(|s| s.connection.as_ref())
            .and_then(|h| lock(&h.kick).take());
        kick.is_some_and(|kick| kick.send(reason).is_ok())
    }

    /// The id of the connection that holds `client`'s session now, if any.
    pub(crate) fn connection_id(&self, client: &str) -> Option<u64> {
        lock(&self.sessions)
            .get(client)
            .and_then(|s| s.connection.as_ref())
            .map(|h| h.connection_id)
    }

    /// How many clients are connected.
    pub fn connected(&self) -> usize {
        lock(&self.sessions)
            .values()
            .filter(|s| s.connection.is_some())
            .count()
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
        r.subscribe(&a, &f("p/d/+"), SubOptions::qos(QoS::AtMostOnce));
        r.subscribe(&a, &f("p/d/event"), SubOptions::qos(QoS::AtLeastOnce));
        r.subscribe(&b, &f("p/#"), SubOptions::qos(QoS::AtMostOnce));
        r.subscribe(&b, &f("#"), SubOptions::qos(QoS::AtMostOnce));
        assert_eq!(
            subs(&r, "p/d/event"),
            [
                ("a".into(), QoS::AtLeastOnce),
                ("b".into(), QoS::AtMostOnce)
            ]
        );
        assert_eq!(subs(&r, "p"), [("b".into(), QoS::AtMostOnce)]);
        assert_eq!(subs(&r, "$sys/p"), []);
        r.subscribe(&a, &f("$sys/+"), SubOptions::qos(QoS::AtMostOnce));
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

    #[test]
    fn a_shared_subscription_delivers_each_message_to_one_member_in_turn() {
        let r = Router::default();
        let f = |s: &str| TopicFilter::parse(s).unwrap();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        r.subscribe(&a, &f("$share/g/s/+"), SubOptions::qos(QoS::AtLeastOnce));
        r.subscribe(&b, &f("$share/g/s/+"), SubOptions::qos(QoS::AtLeastOnce));
        r.subscribe(&b, &f("s/#"), SubOptions::qos(QoS::AtMostOnce));
        let mut got_a = 0;
        for _ in 0..10 {
            let subs = subs(&r, "s/x");
            if subs.iter().any(|(c, _)| c == "a") {
                got_a += 1;
            }
            assert!(subs.iter().any(|(c, _)| c == "b"), "b's own subscription");
        }
        assert_eq!(got_a, 5, "a and b take turns");
        r.unsubscribe("a", &f("$share/g/s/+"));
        r.unsubscribe("b", &f("$share/g/s/+"));
        assert_eq!(subs(&r, "s/x"), [("b".into(), QoS::AtMostOnce)]);
        assert!(r.shares.lock().unwrap().is_empty());
        assert!(matches!(split_share("$share//x"), Some(Err(()))));
        assert!(matches!(split_share("$share/g"), Some(Err(()))));
        assert!(split_share("share/g/x").is_none());
    }
}
