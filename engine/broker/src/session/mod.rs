//! Persistent sessions (MQTT 3 `CleanSession = 0`, MQTT 5 Session Expiry Interval > 0).
//!
//! A persistent session outlives its connections: its subscriptions stay in the router
//! while the client is away, and every QoS ≥ 1 message routed to it is appended to its
//! durable queue (in [`store`]) *before* the publisher is acknowledged. The queue holds
//! each message until the subscriber acknowledges it, so it is both the offline queue and
//! the in-flight window: on reconnect, whatever is still queued is sent again.
//!
//! Tencent's limits apply per session: at most `queue_max` messages (the oldest is dropped
//! and counted when full) and at most `message_ttl` old (expired ones are dropped on
//! redelivery).

pub(crate) mod store;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) use store::SessionStore;

/// The in-memory side of one persistent session.
#[derive(Debug)]
pub(crate) struct Persistent {
    /// How long the session outlives its connection, in seconds (MQTT 5 lets a resuming
    /// CONNECT and a DISCONNECT change it; zero ends it with its connection).
    expiry_secs: AtomicU64,
    /// Most messages its queue keeps.
    pub queue_max: usize,
    /// Messages in its durable queue. Kept as routing appends and acks remove; it can
    /// drift by a few under concurrent drops and is re-counted at every reconnect.
    pub queued: Mutex<usize>,
    /// Since when no connection holds it.
    pub offline_since: Mutex<Option<Instant>>,
    /// Packet ids of QoS 2 PUBLISHes routed and answered with PUBREC, awaiting PUBREL:
    /// kept across reconnects so a resent PUBLISH is not routed twice.
    pub qos2_received: Arc<Mutex<HashSet<u16>>>,
}

impl Persistent {
    pub fn new(expiry: Duration, queue_max: usize) -> Self {
        Self {
            expiry_secs: AtomicU64::new(expiry.as_secs()),
            queue_max,
            queued: Mutex::new(0),
            offline_since: Mutex::new(None),
            qos2_received: Arc::default(),
        }
    }

    pub fn queued(&self) -> std::sync::MutexGuard<'_, usize> {
        self.queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set_offline(&self, since: Option<Instant>) {
        *self
            .offline_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = since;
    }

    /// Whether the session has been without a connection for longer than its expiry.
    pub fn expired(&self, now: Instant) -> bool {
        self.offline_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|since| now.duration_since(since) >= self.expiry())
    }

    pub fn expiry(&self) -> Duration {
        Duration::from_secs(self.expiry_secs.load(Ordering::Relaxed))
    }

    pub fn set_expiry(&self, expiry: Duration) {
        self.expiry_secs.store(expiry.as_secs(), Ordering::Relaxed);
    }
}
