//! # eddy-services — the hub's device services on Tencent's reserved topics
//!
//! A device talks to the hub itself on `$`-topics (`../shared/TENCENT-PROTOCOL.md` §4–§7):
//! its shadow on `$shadow/operation/…`, the time on `$sys/operation/…`, its log level on
//! `$log/operation/…`, answers to RRPC calls on `$rrpc/txd/…`. [`Services`] sees every
//! accepted message as a [`MessageTap`] placed before the rule engine: a message on one of
//! those topics, published by the device the topic names, becomes a job for one of a few
//! workers (always the same one for a device, so its requests are answered in order);
//! anything else passes untouched at the cost of one byte comparison. Answers go back
//! through the broker as [`Publish`]ed messages on the matching `…/result/…` topic, so a
//! device (or later its gateway) gets them by subscription like any message.
//!
//! The management plane reaches the same state through the methods here
//! (`DescribeDeviceShadow`, `UpdateDeviceShadow` with its delta push, `PublishRRPCMessage`,
//! `PublishBroadcastMessage`, `UpdateDeviceLogLevel`); messages to one device go through
//! [`Downlink`], which says whether the device is there to receive them.
//!
//! Durability: a QoS 1 request is acknowledged only after its job ran — for a shadow
//! update, after the new document is committed in the store — so an acknowledged update
//! survives kill -9.

mod broadcast;
mod gateway;
pub mod ota;
mod rrpc;
pub mod shadow;
mod system;
mod topics;

use std::hash::{Hash as _, Hasher as _};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use eddy_core::{
    DeviceId, Downlink, Message, MessageTap, Offered, Publish, QoS, SubDevices, Topic,
    time::unix_now_ms,
};
use eddy_store::Store;
use tokio::sync::{mpsc, oneshot};

pub use broadcast::Broadcast;
pub use rrpc::{RrpcAnswer, RrpcError};
pub use shadow::{ShadowError, ShadowLimits, ShadowView};

use topics::Request;

/// The publisher id of the messages the services send (replies, pushes).
pub const SERVICE_PUBLISHER: &str = "$service";

/// How the services run.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub shadow: ShadowLimits,
    /// How long `PublishRRPCMessage` waits for the device's answer (Tencent: 10 s).
    pub rrpc_timeout: Duration,
    /// Workers answering device requests; one device's requests always reach the same one.
    pub workers: usize,
    /// Requests waiting per worker before their publishers wait (back-pressure).
    pub queue: usize,
    /// Firmware storage and update tasks; without it OTA reports are still answered but
    /// no firmware can be uploaded.
    pub ota: Option<ota::OtaSettings>,
    /// Most sub-devices one gateway has (Tencent: 500).
    pub max_sub_devices: i64,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            shadow: ShadowLimits::default(),
            rrpc_timeout: Duration::from_secs(10),
            workers: 4,
            queue: 1024,
            ota: None,
            max_sub_devices: eddy_registry::gateway::DEFAULT_MAX_SUB_DEVICES,
        }
    }
}

/// The device services: a [`MessageTap`] for device requests and the management plane's
/// way into the same state.
#[derive(Debug)]
pub struct Services {
    shared: Arc<Shared>,
    workers: Vec<mpsc::Sender<Job>>,
}

/// What the workers and the management methods share.
#[derive(Debug)]
struct Shared {
    store: Arc<dyn Store>,
    /// Tencent's rules over the store (gateways and their sub-devices).
    registry: eddy_registry::Registry,
    publish: Arc<dyn Publish>,
    downlink: Arc<dyn Downlink>,
    /// Which sub-devices gateways' connections act for (the broker).
    links: Arc<dyn SubDevices>,
    settings: ServiceSettings,
    rrpc: rrpc::Calls,
    ota: Option<(ota::FirmwareFiles, ota::OtaSettings)>,
}

/// One device request for a worker.
struct Job {
    request: Request,
    message: Arc<Message>,
    client_ip: Option<IpAddr>,
    /// Told when the job ran (the PUBACK of a QoS 1 request waits for it).
    done: Option<oneshot::Sender<Result<(), String>>>,
}

impl Services {
    /// Starts the workers (inside a tokio runtime). `broker` takes the answers (its
    /// [`Publish`]), the management plane's messages to one device ([`Downlink`]) and
    /// the gateways' sub-devices ([`SubDevices`]). Fails only when the firmware directory
    /// cannot be opened.
    pub fn start<B>(
        store: Arc<dyn Store>,
        broker: Arc<B>,
        settings: ServiceSettings,
    ) -> std::io::Result<Arc<Self>>
    where
        B: Publish + Downlink + SubDevices,
    {
        let workers = settings.workers.max(1);
        let queue = settings.queue.max(1);
        let ota = match &settings.ota {
            Some(ota) => Some((ota::FirmwareFiles::open(&ota.dir)?, ota.clone())),
            None => None,
        };
        let registry = eddy_registry::Registry::new(store.clone())
            .with_max_sub_devices(settings.max_sub_devices);
        let shared = Arc::new(Shared {
            store,
            registry,
            publish: broker.clone(),
            downlink: broker.clone(),
            links: broker,
            settings,
            rrpc: rrpc::Calls::default(),
            ota,
        });
        let workers = (0..workers)
            .map(|_| {
                let (tx, rx) = mpsc::channel(queue);
                tokio::spawn(work(shared.clone(), rx));
                tx
            })
            .collect();
        if shared.ota.is_some() {
            tokio::spawn(ota::sweep_timeouts(Arc::downgrade(&shared)));
        }
        Ok(Arc::new(Self { shared, workers }))
    }

    fn worker(&self, device: &DeviceId) -> &mpsc::Sender<Job> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        device.hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % self.workers.len() as u64).unwrap_or(0);
        &self.workers[index]
    }
}

impl MessageTap for Services {
    fn offer(&self, message: &Arc<Message>, client_ip: Option<IpAddr>) -> Offered {
        let Some(request) = Request::parse(message.topic.as_str()) else {
            return Offered::default();
        };
        // Only the device itself, or the gateway acting for it, speaks for its services
        // (the topic ACL already keeps other devices out; this keeps generic clients and
        // rule output out too).
        let device = request.device();
        if message.publisher != device.client_id()
            && self
                .shared
                .links
                .gateway_of(device)
                .is_none_or(|gateway| message.publisher != gateway.client_id())
        {
            return Offered::default();
        }
        if let Request::RrpcReply(device, id) = &request {
            self.shared
                .rrpc
                .answer(device, *id, message.payload.clone());
            return Offered::default();
        }
        let (done, handover) = if message.qos == QoS::AtMostOnce {
            (None, None)
        } else {
            let (tx, rx) = oneshot::channel();
            let handover: eddy_core::Handover = Box::pin(async move {
                rx.await
                    .unwrap_or_else(|_| Err("the device services stopped".to_owned()))
            });
            (Some(tx), Some(handover))
        };
        let worker = self.worker(request.device()).clone();
        let job = Job {
            request,
            message: message.clone(),
            client_ip,
            done,
        };
        let backpressure = match worker.try_send(job) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(job)) => {
                let full: eddy_core::Backpressure = Box::pin(async move {
                    // Closed only at shutdown; the handover then reports it.
                    let _ = worker.send(job).await;
                });
                Some(full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!(topic = %message.topic, "device services stopped; request dropped");
                None
            }
        };
        Offered {
            backpressure,
            handover,
        }
    }
}

/// One worker: answers its devices' requests one at a time, in arrival order.
async fn work(shared: Arc<Shared>, mut jobs: mpsc::Receiver<Job>) {
    while let Some(job) = jobs.recv().await {
        match &job.request {
            Request::Shadow(device) => shadow::answer(&shared, device, &job.message).await,
            Request::Sys(device) => system::answer_time(&shared, device, &job.message).await,
            Request::Log(device) => system::answer_log_level(&shared, device, &job.message).await,
            Request::Ota(device) => ota::answer(&shared, device, &job.message).await,
            Request::Gateway(device) => {
                gateway::answer(&shared, device, &job.message, job.client_ip).await;
            }
            Request::RrpcReply(..) => {}
        }
        if let Some(done) = job.done {
            let _ = done.send(Ok(()));
        }
    }
}

impl Shared {
    /// Publishes `payload` on `topic` into the broker, as the hub (QoS 1: a device that
    /// subscribed with QoS 1 gets it at least once). Failures are logged: the device's
    /// request is answered or it is not, and it may ask again.
    async fn reply(&self, topic: String, payload: serde_json::Value) {
        let topic = match Topic::parse(&topic) {
            Ok(topic) => topic,
            Err(err) => {
                tracing::error!(%topic, error = %err, "a service answer has an invalid topic");
                return;
            }
        };
        let message = Message {
            topic,
            payload: payload.to_string().into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            publisher: SERVICE_PUBLISHER.to_owned(),
            received_at_ms: unix_now_ms(),
            properties: None,
        };
        let topic = message.topic.clone();
        if let Err(err) = self.publish.publish(message).await {
            tracing::warn!(%topic, error = %err, "a service answer could not be published");
        }
    }
}

impl Shared {
    /// Sends `payload` on `topic` to `device` only (QoS 1); true if its live connection
    /// took it.
    async fn send_to_device(
        &self,
        device: &DeviceId,
        topic: String,
        payload: serde_json::Value,
    ) -> bool {
        let Ok(topic) = Topic::parse(&topic) else {
            return false;
        };
        let message = Message {
            topic,
            payload: payload.to_string().into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            publisher: SERVICE_PUBLISHER.to_owned(),
            received_at_ms: unix_now_ms(),
            properties: None,
        };
        self.downlink.send_to_device(device, message).await == eddy_core::DownlinkOutcome::Delivered
    }
}

impl Request {
    fn device(&self) -> &DeviceId {
        match self {
            Request::Shadow(d)
            | Request::Sys(d)
            | Request::Log(d)
            | Request::Ota(d)
            | Request::Gateway(d)
            | Request::RrpcReply(d, _) => d,
        }
    }
}
