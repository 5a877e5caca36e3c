//! Retained messages: the last retained PUBLISH of each topic, sent to every new matching
//! subscription. Held in memory for lookups and in the durable log so they survive
//! restarts; a retained PUBLISH is on disk before it is acknowledged. An empty retained
//! payload deletes the topic's message (MQTT 3.1.1 §3.3.1.3).
//!
//! Lookups by a filter without wildcards are one map read; a wildcard filter scans the
//! retained set (a trie would make that proportional to the matches; the scan is fine for
//! the thousands of retained topics an IoT hub typically holds).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use eddy_core::{Message, TopicFilter};
use eddy_queue::{Batch, Durability, Log, QueueError, Table};

use crate::session::store::{decode_message, encode_message};

#[derive(Debug)]
pub(crate) struct Retained {
    log: Log,
    table: Table,
    by_topic: RwLock<HashMap<String, Arc<Message>>>,
    writes: tokio::sync::Mutex<()>,
}

impl Retained {
    /// Opens the retained set, loading what is on disk.
    pub fn open(log: &Log) -> Result<Self, QueueError> {
        let table = log.table("retained")?;
        let mut by_topic = HashMap::new();
        for entry in table.iter() {
            let (key, value) = entry?;
            match decode_message(&value) {
                Some(message) => {
                    by_topic.insert(message.topic.as_str().to_owned(), Arc::new(message));
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
    /// durably.
    pub async fn set(&self, message: &Arc<Message>) -> Result<(), QueueError> {
        let topic = message.topic.as_str();
        let mut batch = Batch::new();
        if message.payload.is_empty() {
            batch.remove(&self.table, topic.as_bytes().to_vec());
        } else {
            batch.insert(
                &self.table,
                topic.as_bytes().to_vec(),
                encode_message(message, message.qos),
            );
        }
        // Memory and log are updated under one lock, so two PUBLISHes to one topic land in
        // the same order in both (the log applies batches in submission order).
        let pending = {
            let _order = self.writes.lock().await;
            {
                let mut by_topic = self
                    .by_topic
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                if message.payload.is_empty() {
                    by_topic.remove(topic);
                } else {
                    by_topic.insert(topic.to_owned(), message.clone());
                }
            }
            self.log.start(batch, Durability::Sync).await?
        };
        pending.wait().await
    }

    /// The retained messages a new subscription to `filter` receives.
    pub fn matching(&self, filter: &TopicFilter) -> Vec<Arc<Message>> {
        let by_topic = self.by_topic.read().unwrap_or_else(PoisonError::into_inner);
        if !filter.as_str().contains(['+', '#']) {
            return by_topic.get(filter.as_str()).cloned().into_iter().collect();
        }
        let mut found: Vec<Arc<Message>> = by_topic
            .values()
            .filter(|m| filter.matches(&m.topic))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.topic.as_str().cmp(b.topic.as_str()));
        found
    }

    pub fn len(&self) -> usize {
        self.by_topic
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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
    }
}
