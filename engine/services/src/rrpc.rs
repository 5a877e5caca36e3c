//! RRPC (Tencent §7): the management plane calls a device and waits for its answer.
//! `PublishRRPCMessage` sends the payload on `$rrpc/rxd/${pid}/${dn}/${processId}` with a
//! process id the hub picks; the device answers on `$rrpc/txd/${pid}/${dn}/${processId}`
//! (seen by the services' tap), or the call times out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use eddy_core::{DeviceId, DownlinkOutcome, Message, QoS, Topic, time::unix_now_ms};
use tokio::sync::oneshot;

use crate::Services;

/// The device's answer to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrpcAnswer {
    /// The call's process id (Tencent's `MessageId`).
    pub process_id: u64,
    pub payload: Bytes,
}

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RrpcError {
    #[error("the device {0} is offline")]
    Offline(DeviceId),
    #[error("the device {0} is not subscribed to its RRPC topic")]
    NotSubscribed(DeviceId),
    #[error("the device {device} did not answer within {millis} ms")]
    Timeout { device: DeviceId, millis: u128 },
    #[error("the call could not be sent: {0}")]
    Failed(String),
}

/// Calls waiting for their answer, by device and process id.
#[derive(Debug)]
pub(crate) struct Calls {
    next: AtomicU64,
    waiting: Mutex<HashMap<(DeviceId, u64), oneshot::Sender<Bytes>>>,
}

impl Default for Calls {
    fn default() -> Self {
        // Process ids start at a random point so that a restarted hub does not reuse the
        // ids of calls a device may still answer; they stay below 2^53 (exact in JSON).
        Self {
            next: AtomicU64::new(u64::from(rand::random::<u32>())),
            waiting: Mutex::default(),
        }
    }
}

impl Calls {
    fn waiting(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(DeviceId, u64), oneshot::Sender<Bytes>>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A device answered call `id`; an answer nobody waits for (late, or made up) is
    /// ignored.
    pub(crate) fn answer(&self, device: &DeviceId, id: u64, payload: Bytes) {
        match self.waiting().remove(&(device.clone(), id)) {
            Some(waiter) => {
                let _ = waiter.send(payload);
            }
            None => tracing::debug!(%device, process_id = id, "RRPC answer for no waiting call"),
        }
    }
}

/// Takes a call out of the waiting table however its wait ends.
struct Registered<'a> {
    calls: &'a Calls,
    key: (DeviceId, u64),
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.calls.waiting().remove(&self.key);
    }
}

impl Services {
    /// Sends `payload` to `device` as an RRPC call and waits for its answer, at most the
    /// configured timeout.
    pub async fn rrpc(&self, device: &DeviceId, payload: Bytes) -> Result<RrpcAnswer, RrpcError> {
        let calls = &self.shared.rrpc;
        let id = calls.next.fetch_add(1, Ordering::Relaxed) & ((1 << 53) - 1);
        let (tx, rx) = oneshot::channel();
        // Registered before it is sent, so an answer can never arrive first.
        calls.waiting().insert((device.clone(), id), tx);
        let _registered = Registered {
            calls,
            key: (device.clone(), id),
        };
        let topic = format!(
            "$rrpc/rxd/{}/{}/{id}",
            device.product_id, device.device_name
        );
        let topic = Topic::parse(&topic).map_err(|e| RrpcError::Failed(e.to_string()))?;
        let message = Message {
            topic,
            payload,
            qos: QoS::AtMostOnce,
            retain: false,
            publisher: crate::SERVICE_PUBLISHER.to_owned(),
            received_at_ms: unix_now_ms(),
            properties: None,
        };
        match self.shared.downlink.send_to_device(device, message).await {
            DownlinkOutcome::Delivered => {}
            // QoS 0 is never saved for later; an offline device cannot answer in time.
            DownlinkOutcome::DeviceOffline | DownlinkOutcome::Saved => {
                return Err(RrpcError::Offline(device.clone()));
            }
            DownlinkOutcome::NoSubscription => {
                return Err(RrpcError::NotSubscribed(device.clone()));
            }
            DownlinkOutcome::Failed => {
                return Err(RrpcError::Failed("the broker could not take it".into()));
            }
        }
        let timeout = self.shared.settings.rrpc_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(payload)) => Ok(RrpcAnswer {
                process_id: id,
                payload,
            }),
            Ok(Err(_)) | Err(_) => Err(RrpcError::Timeout {
                device: device.clone(),
                millis: timeout.as_millis(),
            }),
        }
    }
}
