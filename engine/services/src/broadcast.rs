//! Broadcast (Tencent §7): one message to every online device of a product, each on its
//! own `$broadcast/rxd/${pid}/${dn}`.

use bytes::Bytes;
use eddy_core::{DeviceId, DownlinkOutcome, Message, ProductId, QoS, Topic, time::unix_now_ms};
use eddy_store::{DeviceFilter, Page, StoreError};

use crate::Services;

/// Devices read from the store per page while broadcasting.
const PAGE: u64 = 250;

/// What one broadcast reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Broadcast {
    /// Devices of the product.
    pub devices: u64,
    /// Of those, the ones with a live connection subscribed to the broadcast topic.
    pub delivered: u64,
}

impl Services {
    /// Sends `payload` to each of `devices` that is connected and subscribed to its
    /// broadcast topic (a group's members, say), and says how many that were.
    pub async fn broadcast_to(&self, devices: &[DeviceId], payload: Bytes, qos: QoS) -> Broadcast {
        let mut outcome = Broadcast::default();
        for id in devices {
            outcome.devices += 1;
            if self.send_broadcast(id, payload.clone(), qos).await {
                outcome.delivered += 1;
            }
        }
        outcome
    }

    async fn send_broadcast(&self, id: &DeviceId, payload: Bytes, qos: QoS) -> bool {
        let topic = format!("$broadcast/rxd/{}/{}", id.product_id, id.device_name);
        let Ok(topic) = Topic::parse(&topic) else {
            return false;
        };
        let message = Message {
            topic,
            payload,
            qos,
            retain: false,
            publisher: crate::SERVICE_PUBLISHER.to_owned(),
            received_at_ms: unix_now_ms(),
            properties: None,
        };
        self.shared.downlink.send_to_device(id, message).await == DownlinkOutcome::Delivered
    }

    /// Sends `payload` to every device of `product` that is connected and subscribed to
    /// its broadcast topic, and says how many that were.
    pub async fn broadcast(
        &self,
        product: &ProductId,
        payload: Bytes,
        qos: QoS,
    ) -> Result<Broadcast, StoreError> {
        let mut outcome = Broadcast::default();
        let mut offset = 0;
        loop {
            let page = self
                .shared
                .store
                .list_devices(
                    product,
                    &DeviceFilter::default(),
                    Page {
                        offset,
                        limit: PAGE,
                    },
                )
                .await?;
            if page.items.is_empty() {
                return Ok(outcome);
            }
            offset += page.items.len() as u64;
            for device in page.items {
                outcome.devices += 1;
                let id = DeviceId::new(device.product_id, device.name);
                if self.send_broadcast(&id, payload.clone(), qos).await {
                    outcome.delivered += 1;
                }
            }
        }
    }
}
