//! The subscription trie: topic levels as edges, `+` and `#` as their own, so a message
//! finds its subscribers in time proportional to its topic's depth, not to the number of
//! subscriptions.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use eddy_core::QoS;

/// How one subscription wants its messages (MQTT 5 subscription options; MQTT 3
/// subscriptions have only the QoS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOptions {
    pub qos: QoS,
    /// Not the subscriber's own messages.
    pub no_local: bool,
    /// Keep the RETAIN flag the message was published with.
    pub retain_as_published: bool,
    /// The Subscription Identifier to send with each message.
    pub id: Option<NonZeroU32>,
}

impl SubOptions {
    pub fn qos(qos: QoS) -> Self {
        Self {
            qos,
            no_local: false,
            retain_as_published: false,
            id: None,
        }
    }
}

/// How a message goes to one subscriber, all its matching subscriptions merged: the
/// highest QoS, RETAIN kept if any asks for it, every subscription identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub qos: QoS,
    pub retain_as_published: bool,
    pub ids: Vec<NonZeroU32>,
}

impl Delivery {
    pub(super) fn merge(&mut self, options: &SubOptions) {
        self.qos = self.qos.max(options.qos);
        self.retain_as_published |= options.retain_as_published;
        if let Some(id) = options.id
            && !self.ids.contains(&id)
        {
            self.ids.push(id);
        }
    }

    pub(super) fn of(options: &SubOptions) -> Self {
        Self {
            qos: options.qos,
            retain_as_published: options.retain_as_published,
            ids: options.id.into_iter().collect(),
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Node {
    pub(super) children: HashMap<String, Node>,
    plus: Option<Box<Node>>,
    /// Subscribers of `…/#` at this level.
    hash: HashMap<Arc<str>, SubOptions>,
    /// Subscribers of exactly this level.
    here: HashMap<Arc<str>, SubOptions>,
}

impl Node {
    pub(super) fn insert(
        &mut self,
        mut levels: std::str::Split<'_, char>,
        client: Arc<str>,
        qos: SubOptions,
    ) {
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
    pub(super) fn remove(&mut self, mut levels: std::str::Split<'_, char>, client: &str) -> bool {
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

    /// Adds the subscribers matching `levels` to `out`, leaving out no-local
    /// subscriptions of `publisher`.
    pub(super) fn collect(
        &self,
        levels: &[&str],
        first: bool,
        publisher: &str,
        out: &mut HashMap<Arc<str>, Delivery>,
    ) {
        let mut add = |subs: &HashMap<Arc<str>, SubOptions>| {
            for (client, options) in subs {
                if options.no_local && &**client == publisher {
                    continue;
                }
                match out.get_mut(client) {
                    Some(delivery) => delivery.merge(options),
                    None => {
                        out.insert(client.clone(), Delivery::of(options));
                    }
                }
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
            child.collect(rest, false, publisher, out);
        }
        if !system && let Some(plus) = &self.plus {
            plus.collect(rest, false, publisher, out);
        }
    }
}
