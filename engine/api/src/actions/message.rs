//! PublishMessage: the management plane sends one device a message.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use eddy_core::time::unix_now_ms;
use eddy_core::{DownlinkOutcome, Message, QoS, Topic};
use serde_json::{Map, Value};

use crate::ApiState;
use crate::error::ApiError;
use crate::params::Params;

/// Largest payload, as for MQTT device messages (Tencent: 16 KB).
const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

pub(super) async fn publish(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let device_name = p.str("DeviceName")?;
    let topic = p.str("Topic")?;
    let payload = p.str("Payload")?;
    let qos = match p.opt_i64("Qos")?.unwrap_or(0) {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        other => {
            return Err(ApiError::invalid(
                "Qos",
                format!("must be 0 or 1, got {other}"),
            ));
        }
    };
    let payload = match p.opt_str("PayloadEncoding")?.as_deref() {
        None | Some("") => Bytes::from(payload.into_bytes()),
        Some("base64") => Bytes::from(
            BASE64
                .decode(payload.as_bytes())
                .map_err(|e| ApiError::invalid("Payload", format!("is not base64: {e}")))?,
        ),
        Some(other) => {
            return Err(ApiError::invalid(
                "PayloadEncoding",
                format!("must be \"base64\" or empty, got {other:?}"),
            ));
        }
    };
    p.finish()?;
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ApiError::new(
            "InvalidParameterValue.PayloadOverLimit",
            format!(
                "The payload has {} bytes; the limit is {MAX_PAYLOAD_BYTES}.",
                payload.len()
            ),
        ));
    }
    let device = state.registry.device(&product_id, &device_name).await?;
    // Tencent: the topic must be the device's own, ${ProductId}/${DeviceName}/….
    let own_prefix = format!("{}/{}/", device.product_id, device.name);
    let topic = Topic::parse(&topic)
        .ok()
        .filter(|t| t.as_str().starts_with(&own_prefix) && t.as_str().len() > own_prefix.len())
        .ok_or_else(|| {
            ApiError::new(
                "FailedOperation.InvalidTopicName",
                format!("The topic {topic:?} must be the device's own: {own_prefix}…"),
            )
        })?;
    let Some(downlink) = &state.downlink else {
        return Err(ApiError::new(
            "FailedOperation",
            "This hub runs no MQTT broker to deliver the message.",
        ));
    };
    let message = Message {
        topic,
        payload,
        qos,
        retain: false,
        publisher: "$api".to_owned(),
        received_at_ms: unix_now_ms(),
        properties: None,
    };
    let id = eddy_core::DeviceId::new(device.product_id, device.name);
    match downlink.send_to_device(&id, message).await {
        DownlinkOutcome::Delivered => Ok(Map::new()),
        DownlinkOutcome::DeviceOffline => Err(ApiError::new(
            "FailedOperation.DeviceOffline",
            format!("The device {id} is offline."),
        )),
        DownlinkOutcome::NoSubscription => Err(ApiError::new(
            "FailedOperation.DeviceNoSubscription",
            format!("The device {id} is not subscribed to the topic."),
        )),
        // Tencent answers a message stored for an offline device with this error code;
        // the message is durable when it is sent.
        DownlinkOutcome::Saved => Err(ApiError::new(
            "LimitExceeded.MessageSaved",
            format!(
                "The device {id} is offline; the message is saved and will be delivered when it reconnects."
            ),
        )),
        DownlinkOutcome::Failed => Err(ApiError::new(
            "InternalError",
            "The message could not be stored; it was not delivered.",
        )),
    }
}
