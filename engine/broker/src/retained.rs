//! Retained messages: the last retained PUBLISH of each topic, sent to every new matching
//! subscription. Held in memory for lookups and in the durable log so they survive
//! restarts; a retained PUBLISH is on disk before it is acknowledged. An empty retained
//! payload deletes the topic's message (MQTT 3.1.1 §3.3.1.3).
//!
//! They sit in a trie over topic levels, so a new subscription's lookup walks only the
//! branches its filter can match (`+` one level, `#` a whole subtree), not every retained
//! topic.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use eddy_core::{Message, TopicFilter};
use eddy_queue::{Batch, Durability, Log, QueueError, Table};

use crate::session::store::{decode_message, encode_message};

/// Retained messages by topic level.
#[derive(Debug, Default)]
struct Tree {
    children: HashMap<String, Tree>,
    message: Option<Arc<Message>>,
    /// Messages in this subtree, this node's included.
    count: usize,
}

impl Tree {
    /// Sets (or with `None` clears) the message of `topic`; returns the change in count.
    fn set(
        &mut self,
        mut levels: std::str::Split<'_, char>,
        message: Option<Arc<Message>>,
    ) -> isize {
        let change = match levels.next() {
            None => {
                let before = isize::from(self.message.is_some());
                self.message = message;
                isize::from(self.message.is_some()) - before
            }
            Some(level) => {
                let child = self.children.entry(level.to_owned()).or_default();
                let change = child.set(levels, message);
                if child.count == 0 {
                    self.children.remove(level);
                }
                change
            }
        };
        self.count = self.count.saturating_add_signed(change);
        change
    }

    /// Every message in this subtree.
    fn all(&self, out: &mut Vec<Arc<Message>>) {
        out.extend(self.message.iter().cloned());
        for child in self.children.values() {
            child.all(out);
        }
    }

    /// The messages whose topics `levels` (a filter's) match; `first` applies the rule
    /// that a wildcard at the first level never matches a `$` topic.
    fn matching(&self, levels: &[&str], first: bool, out: &mut Vec<Arc<Message>>) {
        let Some((level, rest)) = levels.split_first() else {
            out.extend(self.message.iter().cloned());
            return;
        };
        let visible = |name: &String| !(first && name.starts_with('$'));
        match *level {
            "#" => {
                // `a/#` matches `a` itself too.
                out.extend(self.message.iter().cloned());
                for (name, child) in &self.children {
                    if visible(name) {
                        child.all(out);
                    }
                }
            }
            "+" => {
                for (name, child) in &self.children {
                    if visible(name) {
                        child.matching(rest, false, out);
                    }
                }
            }
            literal => {
                if let Some(child) = self.children.get(literal) {
                    child.matching(rest, false, out);
                }
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Retained {
    log: Log,
    table: Table,
    by_topic: RwLock<Tree>,
    writes: tokio::sync::Mutex<()>,
}

impl Retained {
    /// Opens the retained set, loading what is on disk.
    pub fn open(log: &Log) -> Result<Self, QueueError> {
        let table = log.table("retained")?;
        let mut by_topic = Tree::default();
        for entry in table.iter() {
            let (key, value) = entry?;
            match decode_message(&value) {
                Some(message) => {
                    let topic = message.topic.clone();
                    by_topic.set(topic.levels(), Some(Arc::new(message)));
                }
                None => {
                    tracing::error!(topic = %String::from_utf8_lossy(&key), "undecodable retained message: ignored");
                }
            }
        }
        Ok(Self {
            log: log.clone(),
            table,
            by_topic: RwLock::new(by_topic),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// Retains `message` for its topic (or deletes the topic's, for an empty payload),
    /// durably; returns how many retained messages there are then.
    pub async fn set(&self, message: &Arc<Message>) -> Result<usize, QueueError> {
        let topic = message.topic.as_str();
        let kept = (!message.payload.is_empty()).then(|| message.clone());
        let mut batch = Batch::new();
        match &kept {
            Some(m) => batch.insert(
                &self.table,
                topic.as_bytes().to_vec(),
                encode_message(m, m.qos),
            ),
            None => batch.remove(&self.table, topic.as_bytes().to_vec()),
        }
        // Memory and log are updated under one lock, so two PUBLISHes to one topic land in
        // the same order in both (the log applies batches in submission order).
        let (pending, count) = {
            let _order = self.writes.lock().await;
            let count = {
                let mut by_topic = self
                    .by_topic
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                by_topic.set(message.topic.levels(), kept);
                by_topic.count
            };
            (self.log.start(batch, Durability::Sync).await?, count)
        };
        pending.wait().await?;
        Ok(count)
    }

    /// The retained messages a new subscription to `filter` receives, by topic.
    pub fn matching(&self, filter: &TopicFilter) -> Vec<Arc<Message>> {
        let levels: Vec<&str> = filter.levels().collect();
        let mut found = Vec::new();
        self.by_topic
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .matching(&levels, true, &mut found);
        found.sort_by(|a, b| a.topic.as_str().cmp(b.topic.as_str()));
        found
    }

    pub fn len(&self) -> usize {
        self.by_topic
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use eddy_core::{QoS, Topic};

    fn message(topic: &str, payload: &'static [u8]) -> Arc<Message> {
        Arc::new(Message {
            topic: Topic::parse(topic).expect("topic"),
            payload: Bytes::from_static(payload),
            qos: QoS::AtLeastOnce,
            retain: true,
            publisher: "p".into(),
            received_at_ms: 1,
            properties: None,
        })
    }

    #[tokio::test]
    async fn retained_messages_are_replaced_deleted_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let log = Log::open(dir.path()).expect("log");
            let retained = Retained::open(&log).expect("open");
            retained.set(&message("a/1", b"old")).await.expect("set");
            retained.set(&message("a/1", b"new")).await.expect("set");
            retained.set(&message("a/2", b"two")).await.expect("set");
            retained.set(&message("b", b"b")).await.expect("set");
            retained.set(&message("b", b"")).await.expect("delete");
        }
        let log = Log::open(dir.path()).expect("log");
        let retained = Retained::open(&log).expect("open");
        assert_eq!(retained.len(), 2);
        let f = |s: &str| TopicFilter::parse(s).expect("filter");
        let payloads = |filter: &str| -> Vec<Bytes> {
            retained
                .matching(&f(filter))
                .iter()
                .map(|m| m.payload.clone())
                .collect()
        };
        assert_eq!(payloads("a/+"), [&b"new"[..], &b"two"[..]]);
        assert_eq!(payloads("a/1"), [&b"new"[..]]);
        assert!(payloads("b").is_empty());
        assert_eq!(payloads("#").len(), 2);
        assert_eq!(payloads("+/1"), [&b"new"[..]]);
        assert!(payloads("a/1/+").is_empty());
        assert_eq!(payloads("a/1/#"), [&b"new"[..]], "`a/1/#` matches `a/1`");
        retained.set(&message("$SYS/x", b"sys")).await.expect("set");
        assert_eq!(
            payloads("#").len(),
            2,
            "no `$` topics for a leading wildcard"
        );
        assert_eq!(payloads("$SYS/+"), [&b"sys"[..]]);
        assert_eq!(retained.len(), 3);
        retained.set(&message("$SYS/x", b"")).await.expect("delete");
        assert_eq!(retained.len(), 2);
    }
}
