//! # eddy-broker — transport → auth/ACL/limits → router
//!
//! The MQTT broker core (issue B), on tokio with rmqtt-codec as the wire codec (MQTT 3.1
//! "MQIsdp", 3.1.1 and 5.0, version detected at CONNECT).
//!
//! ```text
//! TcpListener ─accept─► transport (tcp | tls: rustls or OpenSSL TLS-PSK | ws | wss)
//!   ─► connection::serve (one task per client)
//!   handshake: version → CONNECT → device_auth (Tencent key) or clients (open broker)
//!              → session attached (router) → CONNACK
//!   reader task: PUBLISH ─acl─► retained ─► Broker::route ─► router (trie, shares)
//!                 ─► persistent queues (durable log, group commit) + subscriber mailboxes
//!                 ─► PUBACK / PUBREC once durable
//!   writer task: mailbox (acks + routed messages) ─► window / rate ─► one flush per burst
//! ```
//!
//! Two kinds of client share the listeners: Tencent devices (their username has Tencent's
//! form; QoS 0/1, the product's topic classes as ACL, Tencent's limits, status in the
//! registry) and, when `[mqtt.clients]` is enabled, generic MQTT clients ([`clients`]:
//! anonymous or argon2 users, ordered allow/deny rules; QoS 2, their own limits).
//! Persistent sessions keep subscriptions and QoS ≥ 1 messages in the durable log
//! (`session`); retained messages live there too. Connect and disconnect are
//! [`events`] for the rule engine.
//! Left for later: server-side topic aliases; inbound QoS 2 state survives reconnects but
//! not a restart.
//! This crate never imports the rule engine or the store: the registry is reached through
//! [`DeviceDirectory`], implemented by the `eddy` binary.

pub mod acl;
mod cert_auth;
pub mod clients;
mod connection;
pub mod device_auth;
mod device_publish;
mod directory;
pub mod events;
mod gateway;
pub mod metrics;
mod retained;
mod router;
mod session;
mod settings;
pub mod transport;

use std::sync::{Arc, Mutex};

use eddy_core::{DeviceId, Downlink, DownlinkOutcome, Message, QoS};
use eddy_queue::{Batch, Durability, Log, QueueError};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

pub use device_publish::{AdmitError, DevicePublishError, DeviceSession};
pub use directory::{DeviceCertificate, DeviceDirectory, DeviceEntry, DirectoryError, NoDevices};
pub use metrics::BrokerMetrics;
pub use router::{Delivery, Router, SubOptions};
pub use settings::{BrokerSettings, ClientLimits};
pub use transport::ListenerKind;

use crate::connection::ToWriter;
use crate::metrics::Reason;
use crate::router::Target;
use crate::session::{Persistent, SessionStore};

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
    /// Who of the generic (non-Tencent) clients may connect, and their topic ACL.
    pub(crate) clients: clients::ClientRules,
    /// Connect and disconnect events, for the rule engine.
    pub(crate) events: events::Events,
    /// Persistent sessions and their queues, on disk.
    sessions: SessionStore,
    /// Retained messages, on disk.
    retained: retained::Retained,
    /// Online/offline events, applied to the registry one at a time in the order the
    /// router saw them (so a reconnect's "online" can never be overtaken by the old
    /// connection's "offline"). At most two events per connection are ever queued.
    status: mpsc::UnboundedSender<StatusEvent>,
    status_inbox: Mutex<Option<mpsc::UnboundedReceiver<StatusEvent>>>,
    /// The later stage that sees every accepted message (the rule engine), once wired.
    tap: std::sync::OnceLock<Arc<dyn eddy_core::MessageTap>>,
    /// Sub-devices gateways' connections act for.
    pub(crate) proxies: gateway::Proxies,
    /// When each device last connected successfully (one entry per device ever seen).
    last_connect: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Failed authentications per source address: (count, start of the window).
    auth_failures: Mutex<std::collections::HashMap<std::net::IpAddr, (u32, std::time::Instant)>>,
}

/// How many subscribers one message reached.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Routed {
    /// Handed to a live connection.
    pub live: usize,
    /// Appended to a persistent session's durable queue (and maybe handed over too).
    pub queued: usize,
}

impl Broker {
    /// A broker whose persistent sessions live in `log`; the sessions found there are
    /// restored (subscriptions and queues) before it returns.
    pub async fn new(
        settings: BrokerSettings,
        directory: Arc<dyn DeviceDirectory>,
        clients: clients::ClientRules,
        log: &Log,
    ) -> Result<Arc<Self>, QueueError> {
        let (status, inbox) = mpsc::unbounded_channel();
        let broker = Arc::new(Self {
            settings,
            directory,
            router: Router::default(),
            metrics: BrokerMetrics::default(),
            clients,
            events: events::Events::default(),
            sessions: SessionStore::open(log)?,
            retained: retained::Retained::open(log)?,
            status,
            status_inbox: Mutex::new(Some(inbox)),
            tap: std::sync::OnceLock::new(),
            proxies: gateway::Proxies::default(),
            last_connect: Mutex::default(),
            auth_failures: Mutex::default(),
        });
        broker.restore_sessions().await?;
        broker
            .metrics
            .retained
            .set(i64::try_from(broker.retained.len()).unwrap_or(i64::MAX));
        Ok(broker)
    }

    async fn restore_sessions(&self) -> Result<(), QueueError> {
        let now_ms = eddy_core::time::unix_now_ms();
        let now = std::time::Instant::now();
        let mut restored = 0usize;
        for session in self.sessions.load().await? {
            let expiry = std::time::Duration::from_secs(session.expiry_secs);
            // A session that was connected when the hub stopped starts waiting now.
            let offline_for = session
                .offline_since_ms
                .map(|since| u64::try_from(now_ms.saturating_sub(since)).unwrap_or(0))
                .map_or(std::time::Duration::ZERO, std::time::Duration::from_millis);
            if offline_for >= expiry {
                self.sessions.delete(&session.client_id).await?;
                continue;
            }
            let persistent = Arc::new(Persistent::new(expiry, self.settings.offline_queue_max));
            *persistent.queued() = session.queued;
            self.metrics
                .queued
                .inc_by(i64::try_from(session.queued).unwrap_or(i64::MAX));
            persistent.set_offline(Some(now.checked_sub(offline_for).unwrap_or(now)));
            self.router.restore(
                Arc::from(session.client_id.as_str()),
                session.subscriptions,
                persistent,
            );
            restored += 1;
        }
        if restored > 0 {
            tracing::info!(sessions = restored, "persistent sessions restored");
        }
        Ok(())
    }

    /// Takes an ended session's queue out of the `queued` gauge.
    pub(crate) fn forget_queued(&self, persistent: &Persistent) {
        let queued = std::mem::take(&mut *persistent.queued());
        self.metrics
            .queued
            .dec_by(i64::try_from(queued).unwrap_or(i64::MAX));
    }

    pub(crate) fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    pub(crate) fn retained(&self) -> &retained::Retained {
        &self.retained
    }

    /// Retains `message` (or deletes its topic's, for an empty payload), durably.
    pub(crate) async fn retain(&self, message: &Arc<Message>) -> Result<(), QueueError> {
        let count = self.retained.set(message).await?;
        self.metrics
            .retained
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Ends persistent sessions past their expiry, on disk too.
    async fn expire_sessions(&self) {
        for (client, persistent) in self.router.expire(std::time::Instant::now()) {
            self.forget_queued(&persistent);
            tracing::info!(client_id = %client, "persistent session expired");
            if let Err(err) = self.sessions.delete(&client).await {
                tracing::error!(error = %err, client_id = %client, "deleting an expired session failed");
            }
        }
    }

    /// Whether `client_id` may connect now (at most once per `interval`); records the
    /// attempt when it may.
    pub(crate) fn connect_allowed(&self, client_id: &str, interval: std::time::Duration) -> bool {
        if interval.is_zero() {
            return true;
        }
        let now = std::time::Instant::now();
        let mut last = self
            .last_connect
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last
            .get(client_id)
            .is_some_and(|at| now.duration_since(*at) < interval)
        {
            return false;
        }
        // Forget connects too old to matter, so the table holds recent ClientIds only.
        if last.len() > 65_536 {
            last.retain(|_, at| now.duration_since(*at) < interval);
        }
        last.insert(client_id.to_owned(), now);
        true
    }

    /// Whether `ip` has failed authentication too often in the current window.
    pub fn auth_blocked(&self, ip: std::net::IpAddr) -> bool {
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
    pub fn auth_failed(&self, ip: std::net::IpAddr) {
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

    /// Every connect and disconnect from now on, in order (see [`events`]).
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<events::ClientEvent> {
        self.events.subscribe()
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
    /// their mailboxes (back-pressure) rather than dropping. Returns once the message is
    /// durable in the queue of every persistent session it was routed to, so the caller
    /// may acknowledge it; an error means it is not, and must not be acknowledged.
    pub async fn route(&self, message: &Arc<Message>) -> Result<(), QueueError> {
        if let Some(durable) = self.route_start(message, None).await? {
            durable.wait().await?;
        }
        Ok(())
    }

    /// Routes `message` like [`Broker::route`] but returns once it is handed over, with
    /// what to wait for before acknowledging it (`None`: nothing): its persistent
    /// sessions' queues and, when rules took it, their action queues. Lets one connection's
    /// PUBLISHes share fsyncs: its reader goes on while earlier ones become durable.
    pub(crate) async fn route_start(
        &self,
        message: &Arc<Message>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Option<eddy_queue::Pending>, QueueError> {
        self.metrics.messages_in.inc();
        let deliveries = self.router.deliveries(&message.topic, &message.publisher);
        let (_, durable) = self.route_to_start(message, deliveries.into_iter()).await?;
        let Some(tap) = self.tap.get() else {
            return Ok(durable);
        };
        let offered = tap.offer(message, client_ip);
        if let Some(full) = offered.backpressure {
            full.await;
        }
        Ok(match offered.handover {
            None => durable,
            Some(handover) => {
                let handover =
                    Box::pin(
                        async move { handover.await.map_err(eddy_queue::QueueError::Storage) },
                    );
                Some(durable.unwrap_or_default().and(handover))
            }
        })
    }

    /// Wires the stage that sees every accepted message from now on (the rule engine);
    /// false if one is wired already.
    pub fn set_tap(&self, tap: Arc<dyn eddy_core::MessageTap>) -> bool {
        self.tap.set(tap).is_ok()
    }

    /// Routes `message` to the given subscribers, waiting until it is durable.
    pub(crate) async fn route_to(
        &self,
        message: &Arc<Message>,
        deliveries: impl Iterator<Item = (Arc<str>, Delivery)>,
    ) -> Result<Routed, QueueError> {
        let (routed, durable) = self.route_to_start(message, deliveries).await?;
        if let Some(durable) = durable {
            durable.wait().await?;
        }
        Ok(routed)
    }

    /// Routes `message` to the given subscribers (ClientId, how it is delivered to it);
    /// returns what reached whom and, when it went into persistent queues, the commit to
    /// wait for before acknowledging it.
    async fn route_to_start(
        &self,
        message: &Arc<Message>,
        deliveries: impl Iterator<Item = (Arc<str>, Delivery)>,
    ) -> Result<(Routed, Option<eddy_queue::Pending>), QueueError> {
        let mut routed = Routed::default();
        let mut batch = Batch::new();
        let mut handovers = Vec::new();
        for (client, delivery) in deliveries {
            // A subscription's QoS was capped when granted (devices: at most 1).
            let qos = message.qos.min(delivery.qos);
            let Some(Target {
                mailbox,
                persistent,
            }) = self.router.target(&client)
            else {
                self.dropped("no_connection");
                continue;
            };
            let seq = match &persistent {
                Some(p) if qos >= QoS::AtLeastOnce => {
                    Some(self.enqueue(&mut batch, &client, p, message, qos)?)
                }
                _ => None,
            };
            routed.queued += usize::from(seq.is_some());
            match mailbox {
                Some(mailbox) => handovers.push((mailbox, qos, seq, delivery)),
                None if seq.is_none() => self.dropped("no_connection"),
                None => {}
            }
        }
        // The queue appends are submitted before any hand-over, so a subscriber's ack
        // (which removes the message) can never reach the log ahead of its append.
        let durable = if batch.is_empty() {
            None
        } else {
            Some(self.sessions.log().start(batch, Durability::Sync).await?)
        };
        for (mailbox, qos, seq, delivery) in handovers {
            let deliver = ToWriter::Deliver {
                message: message.clone(),
                qos,
                seq,
                retain: message.retain && delivery.retain_as_published,
                subscription_ids: delivery.ids,
            };
            if self.hand_over(&mailbox, deliver).await {
                routed.live += 1;
            } else if seq.is_none() {
                self.dropped("no_connection");
            }
        }
        Ok((routed, durable))
    }

    /// Appends `message` to a persistent session's queue in `batch`, dropping the oldest
    /// message when the queue is full; returns the message's seq.
    fn enqueue(
        &self,
        batch: &mut Batch,
        client: &str,
        persistent: &Persistent,
        message: &Message,
        qos: QoS,
    ) -> Result<u64, QueueError> {
        let mut queued = persistent.queued();
        if *queued >= persistent.queue_max && self.sessions.drop_oldest(batch, client)? {
            *queued = queued.saturating_sub(1);
            self.metrics.queued.dec();
            self.dropped("queue_full");
        }
        *queued += 1;
        self.metrics.queued.inc();
        Ok(self.sessions.enqueue(batch, client, message, qos))
    }

    /// Counts a delivery dropped for `reason`.
    pub(crate) fn dropped(&self, reason: &'static str) {
        self.metrics
            .dropped
            .get_or_create(&Reason::of(reason))
            .inc();
    }

    /// Puts a delivery in a connection's mailbox, waiting for room; false when the
    /// connection is gone.
    async fn hand_over(&self, mailbox: &mpsc::Sender<ToWriter>, deliver: ToWriter) -> bool {
        let sent = mailbox.send(deliver).await.is_ok();
        if sent {
            self.metrics.messages_out.inc();
        }
        sent
    }

    /// Delivers a message to one device if it is subscribed to the topic: to its live
    /// connection, or (QoS 1, persistent session) into its durable queue.
    async fn deliver_to(&self, device: &DeviceId, message: Message) -> DownlinkOutcome {
        let mut client_id: Arc<str> = Arc::from(device.client_id().as_str());
        let mut target = self.router.target(&client_id);
        // A sub-device online through its gateway is reached through the gateway.
        if target.as_ref().is_none_or(|t| t.mailbox.is_none())
            && let Some(gateway) = self.proxies.gateway_of(device)
        {
            client_id = Arc::from(gateway.client_id().as_str());
            target = self.router.target(&client_id);
        }
        let Some(target) = target else {
            return DownlinkOutcome::DeviceOffline;
        };
        let Some(delivery) = self
            .router
            .deliveries(&message.topic, &message.publisher)
            .remove(&client_id)
        else {
            return if target.mailbox.is_some() {
                DownlinkOutcome::NoSubscription
            } else {
                DownlinkOutcome::DeviceOffline
            };
        };
        let message = Arc::new(message);
        match self
            .route_to(&message, std::iter::once((client_id.clone(), delivery)))
            .await
        {
            Ok(routed) if routed.live > 0 => DownlinkOutcome::Delivered,
            Ok(routed) if routed.queued > 0 => DownlinkOutcome::Saved,
            Ok(_) => DownlinkOutcome::DeviceOffline,
            Err(err) => {
                tracing::error!(error = %err, client_id = %client_id, "queueing a downlink message failed");
                DownlinkOutcome::Failed
            }
        }
    }

    /// Accepts plain MQTT connections on `listener` until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        self.serve_listeners(vec![(listener, ListenerKind::Tcp)], shutdown)
            .await;
    }

    /// Accepts connections on every listener, each with its transport (TCP, TLS,
    /// WebSocket), until `shutdown` resolves.
    pub async fn serve_listeners(
        self: Arc<Self>,
        listeners: Vec<(TcpListener, ListenerKind)>,
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
        let sweeper = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                sweeper.expire_sessions().await;
            }
        });
        let accepting = futures::future::join_all(
            listeners
                .into_iter()
                .map(|(listener, kind)| self.clone().accept_loop(listener, kind)),
        );
        tokio::select! {
            () = shutdown => {}
            _ = accepting => {}
        }
    }
}

#[async_trait::async_trait]
impl eddy_core::Publish for Broker {
    async fn publish(&self, message: Message) -> Result<(), eddy_core::PublishError> {
        self.route(&Arc::new(message))
            .await
            .map_err(|e| eddy_core::PublishError(e.to_string()))
    }
}

#[async_trait::async_trait]
impl eddy_core::SubDevices for Broker {
    async fn attach(
        &self,
        gateway: &DeviceId,
        sub: &DeviceId,
        client_ip: Option<std::net::IpAddr>,
    ) -> bool {
        let gateway_client: Arc<str> = Arc::from(gateway.client_id().as_str());
        let live = |broker: &Self| {
            broker
                .router
                .target(&gateway_client)
                .is_some_and(|t| t.mailbox.is_some())
        };
        if !live(self) {
            return false;
        }
        let entry = match self.directory.device(sub).await {
            Ok(Some(entry)) if entry.enabled => entry,
            Ok(_) => return false,
            Err(err) => {
                tracing::error!(error = %err, %sub, "looking up a sub-device failed");
                return false;
            }
        };
        let permissions = acl::DevicePermissions::for_device(sub, &entry.classes);
        self.proxies.insert(gateway, sub.clone(), permissions);
        // The gateway may have gone meanwhile; its cleanup may have run before the insert.
        if !live(self) {
            self.proxies.remove(gateway, sub);
            return false;
        }
        self.record_status(StatusEvent {
            device: sub.clone(),
            online_from: Some(client_ip.map(|ip| ip.to_string()).unwrap_or_default()),
            recorded: None,
        });
        tracing::info!(%gateway, %sub, "sub-device online through its gateway");
        true
    }

    async fn detach(&self, gateway: &DeviceId, sub: &DeviceId) -> bool {
        if !self.proxies.remove(gateway, sub) {
            return false;
        }
        self.record_status(StatusEvent {
            device: sub.clone(),
            online_from: None,
            recorded: None,
        });
        tracing::info!(%gateway, %sub, "sub-device offline");
        true
    }

    fn gateway_of(&self, sub: &DeviceId) -> Option<DeviceId> {
        self.proxies.gateway_of(sub)
    }
}

#[async_trait::async_trait]
impl Downlink for Broker {
    async fn send_to_device(&self, device: &DeviceId, message: Message) -> DownlinkOutcome {
        self.deliver_to(device, message).await
    }

    async fn disconnect_device(&self, device: &DeviceId) -> bool {
        self.router.kick(
            device.client_id().as_str(),
            rmqtt_codec::v5::DisconnectReasonCode::AdministrativeAction,
        )
    }
}
