//! # eddy-broker — transport → auth/ACL/limits → router
//!
//! The MQTT broker core (issue B), on tokio with rmqtt-codec as the wire codec (MQTT 3.1
//! "MQIsdp", 3.1.1 and 5.0, version detected at CONNECT).
//!
//! ```text
//! TcpListener ─accept─► connection::serve (one task per client)
//!   handshake: version → CONNECT → device_auth (Tencent key) → CONNACK
//!   reader task: PUBLISH ─acl─► Broker::route ─► router (trie) ─► subscriber mailboxes
//!   writer task: mailbox (acks + routed messages) ─► one flush per burst
//! ```
//!
//! Built so far: Tencent key devices over plain TCP, QoS 0 and 1, topic ACL from the
//! product's topic classes, wildcard subscriptions, kick on a duplicate ClientId, the
//! 1.5 × keepalive idle limit, device online/offline reported to the registry.
//! Not yet (issue B continues): persistent sessions and durable offline queues, QoS 2,
//! retained and will messages, generic (non-Tencent) clients, rate limits, metrics.
//! This crate never imports the rule engine or the store: the registry is reached through
//! [`DeviceDirectory`], implemented by the `eddy` binary.

pub mod acl;
pub mod clients;
mod connection;
pub mod device_auth;
mod directory;
pub mod metrics;
mod router;
mod settings;

use std::sync::{Arc, Mutex};

use eddy_core::{DeviceId, Downlink, DownlinkOutcome, Message, QoS};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

pub use directory::{DeviceDirectory, DeviceEntry, DirectoryError};
pub use metrics::BrokerMetrics;
pub use router::Router;
pub use settings::BrokerSettings;

use crate::connection::ToWriter;
use crate::metrics::Reason;

/// Why a connection ended before or outside its session.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error("malformed packet: {0}")]
    Decode(String),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("I/O: {0}")]
    Io(String),
}

/// A device came online (`online_from` its IP) or went offline.
#[derive(Debug)]
pub(crate) struct StatusEvent {
    pub device: DeviceId,
    pub online_from: Option<String>,
    /// Told once the registry has recorded the event.
    pub recorded: Option<oneshot::Sender<()>>,
}

/// The broker: settings, the registry it authenticates against, the router.
#[derive(Debug)]
pub struct Broker {
    pub settings: BrokerSettings,
    pub directory: Arc<dyn DeviceDirectory>,
    pub router: Router,
    pub metrics: BrokerMetrics,
    /// Online/offline events, applied to the registry one at a time in the order the
    /// router saw them (so a reconnect's "online" can never be overtaken by the old
    /// connection's "offline"). At most two events per connection are ever queued.
    status: mpsc::UnboundedSender<StatusEvent>,
    status_inbox: Mutex<Option<mpsc::UnboundedReceiver<StatusEvent>>>,
    /// When each device last connected successfully (one entry per device ever seen).
    last_connect: Mutex<std::collections::HashMap<DeviceId, std::time::Instant>>,
    /// Failed authentications per source address: (count, start of the window).
    auth_failures: Mutex<std::collections::HashMap<std::net::IpAddr, (u32, std::time::Instant)>>,
}

impl Broker {
    pub fn new(settings: BrokerSettings, directory: Arc<dyn DeviceDirectory>) -> Arc<Self> {
        let (status, inbox) = mpsc::unbounded_channel();
        Arc::new(Self {
            settings,
            directory,
            router: Router::default(),
            metrics: BrokerMetrics::default(),
            status,
            status_inbox: Mutex::new(Some(inbox)),
            last_connect: Mutex::default(),
            auth_failures: Mutex::default(),
        })
    }

    /// Whether `device` may connect now (at most once per `device_connect_interval`);
    /// records the attempt when it may.
    pub(crate) fn connect_allowed(&self, device: &DeviceId) -> bool {
        let interval = self.settings.device_connect_interval;
        if interval.is_zero() {
            return true;
        }
        let now = std::time::Instant::now();
        let mut last = self
            .last_connect
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last
            .get(device)
            .is_some_and(|at| now.duration_since(*at) < interval)
        {
            return false;
        }
        last.insert(device.clone(), now);
        true
    }

    /// Whether `ip` has failed authentication too often in the current window.
    pub(crate) fn auth_blocked(&self, ip: std::net::IpAddr) -> bool {
        let limit = self.settings.auth_failure_limit;
        if limit == 0 {
            return false;
        }
        let failures = self
            .auth_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.get(&ip).is_some_and(|(count, since)| {
            *count >= limit && since.elapsed() < self.settings.auth_failure_window
        })
    }

    /// Counts a failed authentication from `ip`.
    pub(crate) fn auth_failed(&self, ip: std::net::IpAddr) {
        if self.settings.auth_failure_limit == 0 {
            return;
        }
        let window = self.settings.auth_failure_window;
        let now = std::time::Instant::now();
        let mut failures = self
            .auth_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget finished windows so the table holds only addresses failing right now.
        if failures.len() > 4096 {
            failures.retain(|_, (_, since)| now.duration_since(*since) < window);
        }
        let entry = failures.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    pub(crate) fn record_status(&self, event: StatusEvent) {
        // Fails only once the broker is shutting down; the registry then keeps its state.
        let _ = self.status.send(event);
    }

    /// Applies status events to the registry in order.
    async fn record_statuses(
        directory: Arc<dyn DeviceDirectory>,
        mut inbox: mpsc::UnboundedReceiver<StatusEvent>,
    ) {
        while let Some(event) = inbox.recv().await {
            let result = match &event.online_from {
                Some(ip) => directory.device_online(&event.device, ip).await,
                None => directory.device_offline(&event.device).await,
            };
            if let Err(err) = result {
                tracing::error!(error = %err, device = %event.device, "recording the device status failed");
            }
            if let Some(recorded) = event.recorded {
                let _ = recorded.send(());
            }
        }
    }

    /// Delivers an accepted message to every matching subscriber, waiting for room in
    /// their mailboxes (back-pressure) rather than dropping.
    pub async fn route(&self, message: &Arc<Message>) {
        self.metrics.messages_in.inc();
        for (client, sub_qos) in self.router.subscribers(&message.topic) {
            let delivered = match self.router.mailbox(&client) {
                Some(mailbox) => self.hand_over(&mailbox, message.clone(), sub_qos).await,
                None => false,
            };
            if !delivered {
                self.metrics
                    .dropped
                    .get_or_create(&Reason::of("no_connection"))
                    .inc();
            }
        }
    }

    /// Puts a message in a connection's mailbox at the QoS both sides allow (devices: at
    /// most 1), waiting for room; false when the connection is gone.
    async fn hand_over(
        &self,
        mailbox: &mpsc::Sender<ToWriter>,
        message: Arc<Message>,
        sub_qos: QoS,
    ) -> bool {
        let qos = message.qos.min(sub_qos).min(QoS::AtLeastOnce);
        let sent = mailbox
            .send(ToWriter::Deliver { message, qos })
            .await
            .is_ok();
        if sent {
            self.metrics.messages_out.inc();
        }
        sent
    }

    /// Delivers a message to one device's connection if it is subscribed to the topic.
    async fn deliver_to(&self, device: &DeviceId, message: Message) -> DownlinkOutcome {
        let client_id = device.client_id();
        let Some(mailbox) = self.router.mailbox(&client_id) else {
            return DownlinkOutcome::DeviceOffline;
        };
        let Some(sub_qos) = self
            .router
            .subscribers(&message.topic)
            .get(client_id.as_str())
            .copied()
        else {
            return DownlinkOutcome::NoSubscription;
        };
        if self.hand_over(&mailbox, Arc::new(message), sub_qos).await {
            DownlinkOutcome::Delivered
        } else {
            DownlinkOutcome::DeviceOffline
        }
    }

    /// Accepts MQTT connections on `listener` until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let inbox = self
            .status_inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(inbox) = inbox {
            tokio::spawn(Self::record_statuses(self.directory.clone(), inbox));
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tokio::spawn(connection::serve(self.clone(), stream, peer));
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: keep serving the others.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::task::yield_now().await;
                    }
                },
            }
        }
    }
}

#[async_trait::async_trait]
impl Downlink for Broker {
    async fn send_to_device(&self, device: &DeviceId, message: Message) -> DownlinkOutcome {
        self.deliver_to(device, message).await
    }
}
