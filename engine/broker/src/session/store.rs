//! Persistent sessions on disk, in the durable log: one record per session (its
//! subscriptions and expiry) and one queue of messages per session.
//!
//! Queue keys are `len(ClientId) as u16 BE ‖ ClientId ‖ seq as u64 BE`, so one session's
//! messages are contiguous and in arrival order, and a ClientId can never be a prefix of
//! another's keys. `seq` is one counter for the whole hub, restored from the highest key at
//! startup.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use eddy_core::{Message, MessageProperties, QoS, Topic, TopicFilter};
use eddy_queue::{Batch, Durability, Log, QueueError, Table};
use serde::{Deserialize, Serialize};

use crate::router::SubOptions;

/// A subscription as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSubscription {
    filter: String,
    qos: u8,
    no_local: bool,
    retain_as_published: bool,
    id: Option<u32>,
}

/// A session record as stored.
#[derive(Debug, Serialize, Deserialize)]
struct SessionRecord {
    subscriptions: Vec<StoredSubscription>,
    expiry_secs: u64,
    /// When its last connection ended (Unix ms); `None` while connected, or after a crash.
    offline_since_ms: Option<i64>,
}

/// A queued message as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredMessage {
    topic: String,
    payload: Vec<u8>,
    qos: u8,
    retain: bool,
    publisher: String,
    received_at_ms: i64,
    properties: Option<StoredProperties>,
}

/// MQTT 5 properties as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredProperties {
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation_data: Option<Vec<u8>>,
    user_properties: Vec<(String, String)>,
    payload_is_utf8: bool,
    expires_at_ms: Option<i64>,
}

/// `message` as stored, with `qos` in place of its own.
pub(crate) fn encode_message(message: &Message, qos: QoS) -> Vec<u8> {
    let stored = StoredMessage {
        topic: message.topic.as_str().to_owned(),
        payload: message.payload.to_vec(),
        qos: qos as u8,
        retain: message.retain,
        publisher: message.publisher.clone(),
        received_at_ms: message.received_at_ms,
        properties: message.properties.as_deref().map(|p| StoredProperties {
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.as_ref().map(|d| d.to_vec()),
            user_properties: p.user_properties.clone(),
            payload_is_utf8: p.payload_is_utf8,
            expires_at_ms: p.expires_at_ms,
        }),
    };
    // Encoding plain strings, bytes and integers into a Vec cannot fail.
    postcard::to_allocvec(&stored).unwrap_or_default()
}

/// A stored message; `None` when the bytes are not one.
pub(crate) fn decode_message(bytes: &[u8]) -> Option<Message> {
    let m = postcard::from_bytes::<StoredMessage>(bytes).ok()?;
    Some(Message {
        topic: Topic::parse(&m.topic).ok()?,
        payload: Bytes::from(m.payload),
        qos: QoS::from_u8(m.qos)?,
        retain: m.retain,
        publisher: m.publisher,
        received_at_ms: m.received_at_ms,
        properties: m.properties.map(|p| {
            Arc::new(MessageProperties {
                content_type: p.content_type,
                response_topic: p.response_topic,
                correlation_data: p.correlation_data.map(Bytes::from),
                user_properties: p.user_properties,
                payload_is_utf8: p.payload_is_utf8,
                expires_at_ms: p.expires_at_ms,
            })
        }),
    })
}

/// A session found on disk at startup.
#[derive(Debug)]
pub(crate) struct RestoredSession {
    pub client_id: String,
    pub subscriptions: Vec<(TopicFilter, SubOptions)>,
    pub expiry_secs: u64,
    pub offline_since_ms: Option<i64>,
    pub queued: usize,
}

/// The durable side of persistent sessions.
#[derive(Debug)]
pub(crate) struct SessionStore {
    log: Log,
    sessions: Table,
    queue: Table,
    next_seq: AtomicU64,
}

fn queue_prefix(client_id: &str) -> Vec<u8> {
    let id = client_id.as_bytes();
    // MQTT strings are at most 65,535 bytes, so the length always fits.
    let len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    let mut key = Vec::with_capacity(2 + id.len() + 8);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(id);
    key
}

fn queue_key(client_id: &str, seq: u64) -> Vec<u8> {
    let mut key = queue_prefix(client_id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Splits a queue key into its ClientId and seq.
fn split_queue_key(key: &[u8]) -> Option<(&str, u64)> {
    let len = usize::from(u16::from_be_bytes([*key.first()?, *key.get(1)?]));
    let id = std::str::from_utf8(key.get(2..2 + len)?).ok()?;
    let seq = u64::from_be_bytes(key.get(2 + len..)?.try_into().ok()?);
    Some((id, seq))
}

fn corrupt(what: &str, err: impl std::fmt::Display) -> QueueError {
    QueueError::Storage(format!("corrupt {what}: {err}"))
}

impl SessionStore {
    pub fn open(log: &Log) -> Result<Self, QueueError> {
        let sessions = log.table("sessions")?;
        let queue = log.table("session_queue")?;
        Ok(Self {
            log: log.clone(),
            sessions,
            queue,
            next_seq: AtomicU64::new(1),
        })
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Every stored session, with the size of its queue; queued messages whose session is
    /// gone are deleted. Also restores the seq counter.
    pub async fn load(&self) -> Result<Vec<RestoredSession>, QueueError> {
        let mut restored = Vec::new();
        for entry in self.sessions.iter() {
            let (key, value) = entry?;
            let client_id =
                String::from_utf8(key.to_vec()).map_err(|e| corrupt("session key", e))?;
            let record: SessionRecord =
                postcard::from_bytes(&value).map_err(|e| corrupt("session record", e))?;
            let subscriptions = record
                .subscriptions
                .iter()
                .filter_map(|s| {
                    Some((
                        TopicFilter::parse(&s.filter).ok()?,
                        SubOptions {
                            qos: QoS::from_u8(s.qos)?,
                            no_local: s.no_local,
                            retain_as_published: s.retain_as_published,
                            id: s.id.and_then(NonZeroU32::new),
                        },
                    ))
                })
                .collect();
            restored.push(RestoredSession {
                client_id,
                subscriptions,
                expiry_secs: record.expiry_secs,
                offline_since_ms: record.offline_since_ms,
                queued: 0,
            });
        }
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut orphans = Batch::new();
        let mut max_seq = 0;
        let known: std::collections::HashSet<&str> =
            restored.iter().map(|s| s.client_id.as_str()).collect();
        for entry in self.queue.iter() {
            let (key, _) = entry?;
            let Some((client_id, seq)) = split_queue_key(&key) else {
                orphans.remove(&self.queue, key.to_vec());
                continue;
            };
            max_seq = max_seq.max(seq);
            if known.contains(client_id) {
                *counts.entry(client_id.to_owned()).or_default() += 1;
            } else {
                orphans.remove(&self.queue, key.to_vec());
            }
        }
        if !orphans.is_empty() {
            tracing::info!(
                entries = orphans.len(),
                "deleting queued messages of ended sessions"
            );
            self.log.commit(orphans, Durability::Sync).await?;
        }
        self.next_seq.store(max_seq + 1, Ordering::Relaxed);
        for session in &mut restored {
            session.queued = counts.get(&session.client_id).copied().unwrap_or(0);
        }
        Ok(restored)
    }

    /// Writes a session's record.
    pub async fn save(
        &self,
        client_id: &str,
        subscriptions: &[(TopicFilter, SubOptions)],
        expiry_secs: u64,
        offline_since_ms: Option<i64>,
        durability: Durability,
    ) -> Result<(), QueueError> {
        let record = SessionRecord {
            subscriptions: subscriptions
                .iter()
                .map(|(f, o)| StoredSubscription {
                    filter: f.as_str().to_owned(),
                    qos: o.qos as u8,
                    no_local: o.no_local,
                    retain_as_published: o.retain_as_published,
                    id: o.id.map(NonZeroU32::get),
                })
                .collect(),
            expiry_secs,
            offline_since_ms,
        };
        let value = postcard::to_allocvec(&record).map_err(|e| corrupt("session record", e))?;
        let mut batch = Batch::new();
        batch.insert(&self.sessions, client_id.as_bytes().to_vec(), value);
        self.log.commit(batch, durability).await
    }

    /// Deletes a session's record and every message queued for it.
    pub async fn delete(&self, client_id: &str) -> Result<(), QueueError> {
        let mut batch = Batch::new();
        batch.remove(&self.sessions, client_id.as_bytes().to_vec());
        for entry in self.queue.prefix(&queue_prefix(client_id)) {
            batch.remove(&self.queue, entry?.0.to_vec());
        }
        self.log.commit(batch, Durability::Sync).await
    }

    /// Adds `message`, to be delivered at `qos`, to `client_id`'s queue in `batch`;
    /// returns its seq.
    pub fn enqueue(&self, batch: &mut Batch, client_id: &str, message: &Message, qos: QoS) -> u64 {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        batch.insert(
            &self.queue,
            queue_key(client_id, seq),
            encode_message(message, qos),
        );
        seq
    }

    /// Adds the removal of `client_id`'s oldest queued message to `batch`; false when the
    /// queue is empty.
    pub fn drop_oldest(&self, batch: &mut Batch, client_id: &str) -> Result<bool, QueueError> {
        match self.queue.first_with_prefix(&queue_prefix(client_id))? {
            Some((key, _)) => {
                batch.remove(&self.queue, key.to_vec());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Removes an acknowledged message (no fsync: losing this only redelivers it).
    pub async fn dequeue(&self, client_id: &str, seq: u64) -> Result<(), QueueError> {
        let mut batch = Batch::new();
        batch.remove(&self.queue, queue_key(client_id, seq));
        self.log.submit(batch).await
    }

    /// Everything queued for `client_id`, oldest first. Messages received before
    /// `not_before_ms` are deleted instead (Tencent keeps offline messages 24 h).
    pub async fn queued(
        &self,
        client_id: &str,
        not_before_ms: i64,
    ) -> Result<(Vec<(u64, Message)>, usize), QueueError> {
        let mut messages = Vec::new();
        let mut expired = Batch::new();
        for entry in self.queue.prefix(&queue_prefix(client_id)) {
            let (key, value) = entry?;
            let Some((_, seq)) = split_queue_key(&key) else {
                continue;
            };
            match decode_message(&value) {
                Some(message) if message.received_at_ms >= not_before_ms => {
                    messages.push((seq, message));
                }
                Some(_) => expired.remove(&self.queue, key.to_vec()),
                None => {
                    tracing::error!(client_id, seq, "undecodable queued message: deleted");
                    expired.remove(&self.queue, key.to_vec());
                }
            }
        }
        let dropped = expired.len();
        self.log.commit(expired, Durability::Buffered).await?;
        Ok((messages, dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_round_trip_and_never_share_a_prefix() {
        let k = queue_key("PID1dev", 42);
        assert_eq!(split_queue_key(&k), Some(("PID1dev", 42)));
        assert!(!queue_key("ab", 1).starts_with(&queue_prefix("a")));
        assert_eq!(split_queue_key(b"\x00"), None);
    }

    fn message(topic: &str, at: i64) -> Message {
        Message {
            topic: Topic::parse(topic).expect("topic"),
            payload: Bytes::from_static(b"hi"),
            qos: QoS::AtLeastOnce,
            retain: false,
            publisher: "p".into(),
            received_at_ms: at,
            properties: None,
        }
    }

    #[tokio::test]
    async fn sessions_and_queues_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let log = Log::open(dir.path()).expect("open");
            let store = SessionStore::open(&log).expect("store");
            store.load().await.expect("load");
            let filter = TopicFilter::parse("a/+").expect("filter");
            store
                .save(
                    "c1",
                    &[(filter, SubOptions::qos(QoS::AtLeastOnce))],
                    60,
                    None,
                    Durability::Sync,
                )
                .await
                .expect("save");
            let mut batch = Batch::new();
            let first = store.enqueue(&mut batch, "c1", &message("a/1", 10), QoS::AtLeastOnce);
            store.enqueue(&mut batch, "c1", &message("a/2", 1_000), QoS::AtLeastOnce);
            store.enqueue(&mut batch, "gone", &message("a/3", 1_000), QoS::AtLeastOnce);
            log.commit(batch, Durability::Sync).await.expect("commit");
            store.dequeue("c1", first).await.expect("dequeue");
            log.commit(Batch::new(), Durability::Sync)
                .await
                .expect("sync");
        }
        let log = Log::open(dir.path()).expect("reopen");
        let store = SessionStore::open(&log).expect("store");
        let restored = store.load().await.expect("load");
        assert_eq!(restored.len(), 1);
        assert_eq!(restored[0].client_id, "c1");
        assert_eq!(
            restored[0].queued, 1,
            "the acked one is gone, the orphan too"
        );
        assert_eq!(restored[0].subscriptions[0].0.as_str(), "a/+");
        let (queued, expired) = store.queued("c1", 0).await.expect("queued");
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].1.topic.as_str(), "a/2");
        assert_eq!(expired, 0);
        let mut batch = Batch::new();
        let later = store.enqueue(&mut batch, "c1", &message("a/4", 1), QoS::AtLeastOnce);
        assert!(later > queued[0].0, "seq continues after a restart");
        log.commit(batch, Durability::Sync).await.expect("commit");
        let (queued, expired) = store.queued("c1", 500).await.expect("queued");
        assert_eq!((queued.len(), expired), (1, 1), "too old: deleted");
        store.delete("c1").await.expect("delete");
        assert!(store.load().await.expect("load").is_empty());
    }
}
