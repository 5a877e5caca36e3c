//! PublishMessage (one device, one topic of its own), PublishRRPCMessage (call a device
//! and wait for its answer), PublishBroadcastMessage (every online device of a product).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use eddy_core::time::unix_now_ms;
use eddy_core::{DownlinkOutcome, Message, QoS, Topic};
use eddy_services::RrpcError;
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
    let qos = qos(p.opt_i64("Qos")?.unwrap_or(0))?;
    let payload = payload(p)?;
    p.finish()?;
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
    let logged = state.logs.as_ref().map(|_| message.clone());
    let outcome = downlink.send_to_device(&id, message).await;
    if let (Some(logs), Some(message)) = (&state.logs, logged)
        && matches!(outcome, DownlinkOutcome::Delivered | DownlinkOutcome::Saved)
    {
        logs.record_downlink(&id, &message);
    }
    match outcome {
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

/// PublishRRPCMessage: `Payload` (UTF-8 text) to `$rrpc/rxd/${pid}/${dn}/${MessageId}`;
/// answers with the device's reply, base64-encoded, or `FailedOperation.RRPCTimeout`.
pub(super) async fn rrpc(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let device_name = p.str("DeviceName")?;
    let payload = within_limit(Bytes::from(p.str("Payload")?.into_bytes()))?;
    p.finish()?;
    let device = state.registry.device(&product_id, &device_name).await?;
    let services = super::shadow::services(state)?;
    let id = eddy_core::DeviceId::new(device.product_id, device.name);
    match services.rrpc(&id, payload).await {
        Ok(answer) => Ok(super::object(serde_json::json!({
            "MessageId": answer.process_id,
            "PayloadBase64": BASE64.encode(&answer.payload),
        }))),
        Err(RrpcError::Offline(_)) => Err(ApiError::new(
            "FailedOperation.DeviceOffline",
            format!("The device {id} is offline."),
        )),
        Err(RrpcError::NotSubscribed(_)) => Err(ApiError::new(
            "FailedOperation.DeviceNoSubscription",
            format!(
                "The device {id} is not subscribed to $rrpc/rxd/{}/{}/+.",
                id.product_id, id.device_name
            ),
        )),
        Err(err @ RrpcError::Timeout { .. }) => Err(ApiError::new(
            "FailedOperation.RRPCTimeout",
            format!("{err}."),
        )),
        Err(RrpcError::Failed(why)) => {
            tracing::error!(device = %id, error = %why, "RRPC call failed");
            Err(ApiError::internal())
        }
    }
}

/// PublishBroadcastMessage: `Payload` to every device of the product (with Eddy's
/// `GroupName`: of the product and the group) that is online and subscribed to
/// `$broadcast/rxd/${pid}/${dn}`; answers once it was handed to each, with a `TaskId` that
/// names the broadcast in the hub's log.
pub(super) async fn broadcast(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let qos = qos(p.i64("Qos")?)?;
    let payload = payload(p)?;
    // Eddy's: only the product's devices in this device group.
    let group = p.opt_str("GroupName")?;
    p.finish()?;
    let product = state.registry.product(&product_id).await?;
    let services = super::shadow::services(state)?;
    let task_id = i64::from(rand::random::<u32>());
    let reached = match &group {
        Some(group) => {
            let members = state
                .registry
                .all_group_devices(group, product.id.as_str())
                .await?;
            services.broadcast_to(&members, payload, qos).await
        }
        None => services
            .broadcast(&product.id, payload, qos)
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "listing devices for a broadcast failed");
                ApiError::internal()
            })?,
    };
    tracing::info!(
        task_id,
        product = %product.id,
        devices = reached.devices,
        delivered = reached.delivered,
        "broadcast sent"
    );
    Ok(super::object(serde_json::json!({ "TaskId": task_id })))
}

fn qos(value: i64) -> Result<QoS, ApiError> {
    match value {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        other => Err(ApiError::invalid(
            "Qos",
            format!("must be 0 or 1, got {other}"),
        )),
    }
}

/// `Payload`, decoded as `PayloadEncoding` says ("base64" or empty), within the limit.
fn payload(p: &Params) -> Result<Bytes, ApiError> {
    let payload = p.str("Payload")?;
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
    within_limit(payload)
}

fn within_limit(payload: Bytes) -> Result<Bytes, ApiError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ApiError::new(
            "InvalidParameterValue.PayloadOverLimit",
            format!(
                "The payload has {} bytes; the limit is {MAX_PAYLOAD_BYTES}.",
                payload.len()
            ),
        ));
    }
    Ok(payload)
}
