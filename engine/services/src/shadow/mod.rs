//! The device shadow (Tencent §4): a JSON document per device with what it `reported` and
//! what the management plane `desired`, versioned, kept in the store.
//!
//! Devices ask on `$shadow/operation/${pid}/${dn}` and are answered on
//! `$shadow/operation/result/${pid}/${dn}`:
//! - `{"type":"get","clientToken":…}` → the whole state (`reported`, `desired`, and the
//!   `delta` still to apply), its version and time;
//! - `{"type":"update","state":{"reported":{…}},"version":N,"clientToken":…}` → the fields
//!   written, the new version; `version` 0 or absent skips the version check, any other
//!   value must be the shadow's version (else `result` 5005). `"desired": null` clears
//!   desired; `"overwriteUpdate": true` replaces `reported` instead of merging.
//! - `{"type":"delete","clientToken":…}` → the shadow is removed.
//!
//! A write that changes `desired` while it differs from `reported` pushes
//! `{"type":"delta","payload":{"state":{…},"timestamp":…,"version":N}}` to the device; an
//! offline device gets the same delta in its next `get`.

mod document;

use eddy_core::{DeviceId, Message, time::unix_now_ms};
use eddy_store::{ShadowRecord, StoreError};
use serde_json::{Map, Value, json};

pub use document::{Change, Document, ShadowError, ShadowLimits};

use crate::topics::result_topic;
use crate::{Services, Shared};

/// Tries before a write that keeps losing to concurrent writers gives up.
const WRITE_ATTEMPTS: usize = 16;

/// A shadow as the management plane shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowView {
    pub document: Document,
    /// `desired` minus what `reported` already shows.
    pub delta: Map<String, Value>,
}

impl ShadowView {
    fn of(document: Document) -> Self {
        let delta = document.delta();
        Self { document, delta }
    }

    /// The `state` object of a get reply: `reported` always, `desired` and `delta` when
    /// they hold anything.
    pub fn state(&self) -> Value {
        let mut state = Map::new();
        state.insert(
            "reported".into(),
            Value::Object(self.document.reported.clone()),
        );
        if !self.document.desired.is_empty() {
            state.insert(
                "desired".into(),
                Value::Object(self.document.desired.clone()),
            );
        }
        if !self.delta.is_empty() {
            state.insert("delta".into(), Value::Object(self.delta.clone()));
        }
        Value::Object(state)
    }

    /// The `payload` of a get reply: `{"state":…,"timestamp":ms,"version":N}`.
    pub fn payload(&self) -> Value {
        json!({
            "state": self.state(),
            "timestamp": self.document.timestamp_ms,
            "version": self.document.version,
        })
    }

    /// The whole get reply (`DescribeDeviceShadow`'s `Data` is this without a token).
    pub fn reply(&self, token: &Value) -> Value {
        let mut reply = success(token, "get", self.payload(), unix_now_ms() / 1000);
        if token.is_null()
            && let Some(map) = reply.as_object_mut()
        {
            map.remove("clientToken");
        }
        reply
    }
}

/// The reply to a management-plane update (`UpdateDeviceShadow`'s `Data`): the change
/// written, the new version and time, as a device's update reply without a token.
pub fn update_reply(change: &Change, written: &Document) -> Value {
    let payload = json!({
        "state": change.state(),
        "timestamp": written.timestamp_ms,
        "version": written.version,
    });
    let mut reply = success(&Value::Null, "update", payload, unix_now_ms());
    if let Some(map) = reply.as_object_mut() {
        map.remove("clientToken");
    }
    reply
}

impl Services {
    /// The device's shadow (an empty one at version 0 when none was written).
    pub async fn shadow(&self, device: &DeviceId) -> Result<ShadowView, ShadowError> {
        Ok(ShadowView::of(load(&self.shared, device).await?.0))
    }

    /// The management plane's write (`UpdateDeviceShadow`): `change` applies only if
    /// `version` is the shadow's version. Pushes the delta to the device when `desired`
    /// changed and still differs from `reported`.
    pub async fn update_shadow(
        &self,
        device: &DeviceId,
        change: &Change,
        version: i64,
    ) -> Result<ShadowView, ShadowError> {
        let written = write(&self.shared, device, change, Some(version)).await?;
        push_delta_if_due(&self.shared, device, change, &written).await;
        Ok(ShadowView::of(written))
    }

    /// Removes the device's shadow; false if it had none.
    pub async fn delete_shadow(&self, device: &DeviceId) -> Result<bool, ShadowError> {
        self.shared
            .store
            .delete_shadow(&device.product_id, &device.device_name)
            .await
            .map_err(internal)
    }
}

/// Answers one device request.
pub(crate) async fn answer(shared: &Shared, device: &DeviceId, message: &Message) {
    let topic = result_topic("shadow", device);
    let request: Value = match serde_json::from_slice(&message.payload) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(_) | Err(_) => {
            tracing::debug!(%device, "shadow request is not a JSON object");
            let err = ShadowError::Invalid("the request is not a JSON object".into());
            shared.reply(topic, failure(&Value::Null, "", &err)).await;
            return;
        }
    };
    let token = request.get("clientToken").cloned().unwrap_or(Value::Null);
    let kind = request.get("type").and_then(Value::as_str).unwrap_or("");
    let outcome = match kind {
        "get" => load(shared, device)
            .await
            .map(|(doc, _)| ShadowView::of(doc).reply(&token)),
        "update" => update_from_device(shared, device, &request, &token).await,
        "delete" => shared
            .store
            .delete_shadow(&device.product_id, &device.device_name)
            .await
            .map_err(internal)
            .map(|_| success(&token, "delete", json!({}), unix_now_ms())),
        other => Err(ShadowError::Invalid(format!(
            "\"type\" must be \"get\", \"update\" or \"delete\", got {other:?}"
        ))),
    };
    let reply = outcome.unwrap_or_else(|err| {
        tracing::debug!(%device, error = %err, "shadow request refused");
        failure(&token, kind, &err)
    });
    shared.reply(topic, reply).await;
}

async fn update_from_device(
    shared: &Shared,
    device: &DeviceId,
    request: &Value,
    token: &Value,
) -> Result<Value, ShadowError> {
    let state = request
        .get("state")
        .ok_or_else(|| ShadowError::Invalid("an update needs \"state\"".into()))?;
    let overwrite = match request.get("overwriteUpdate") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ShadowError::Invalid(
                "\"overwriteUpdate\" must be true or false".into(),
            ));
        }
    };
    let version = match request.get("version") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .filter(|v| *v >= 0)
            .ok_or_else(|| ShadowError::Invalid("\"version\" must be a whole number ≥ 0".into()))?,
    };
    let change = Change::from_state(state, overwrite)?;
    let expected = (version != 0).then_some(version);
    let written = write(shared, device, &change, expected).await?;
    let payload = json!({
        "state": change.state(),
        "timestamp": written.timestamp_ms,
        "version": written.version,
    });
    push_delta_if_due(shared, device, &change, &written).await;
    Ok(success(token, "update", payload, unix_now_ms()))
}

/// `{"clientToken","payload","result":0,"timestamp","type"}`. Tencent's outer timestamp
/// is in milliseconds in update replies and in seconds in get replies.
fn success(token: &Value, kind: &str, payload: Value, timestamp: i64) -> Value {
    json!({
        "clientToken": token,
        "payload": payload,
        "result": 0,
        "timestamp": timestamp,
        "type": kind,
    })
}

/// The same shape with the error's `result` code and its reason. `payload` is always
/// there (Tencent's Java SDK reports nothing without it); after a version conflict it
/// carries the shadow's version so the device can catch up.
fn failure(token: &Value, kind: &str, err: &ShadowError) -> Value {
    let payload = match err {
        ShadowError::VersionConflict { current, .. } => json!({ "version": current }),
        _ => json!({}),
    };
    json!({
        "clientToken": token,
        "payload": payload,
        "result": err.code(),
        "message": err.to_string(),
        "timestamp": unix_now_ms(),
        "type": kind,
    })
}

async fn push_delta_if_due(shared: &Shared, device: &DeviceId, change: &Change, doc: &Document) {
    if !change.touches_desired() {
        return;
    }
    let delta = doc.delta();
    if delta.is_empty() {
        return;
    }
    let push = json!({
        "type": "delta",
        "timestamp": unix_now_ms(),
        "payload": {
            "state": delta,
            "timestamp": doc.timestamp_ms,
            "version": doc.version,
        },
    });
    shared.reply(result_topic("shadow", device), push).await;
}

/// The stored document and its stored version (0: none).
async fn load(shared: &Shared, device: &DeviceId) -> Result<(Document, i64), ShadowError> {
    let record = shared
        .store
        .shadow(&device.product_id, &device.device_name)
        .await
        .map_err(internal)?;
    let Some(record) = record else {
        return Ok((Document::default(), 0));
    };
    let section = |text: &str| match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ShadowError::Internal(format!(
            "the stored shadow of {device} is not a JSON object"
        ))),
    };
    let document = Document {
        reported: section(&record.reported)?,
        desired: section(&record.desired)?,
        version: record.version,
        timestamp_ms: record.updated_at_ms,
    };
    Ok((document, record.version))
}

/// Applies `change` with compare-and-set on the stored version, reading again when a
/// concurrent writer came first. `expected` is the version the writer asked for.
async fn write(
    shared: &Shared,
    device: &DeviceId,
    change: &Change,
    expected: Option<i64>,
) -> Result<Document, ShadowError> {
    for _ in 0..WRITE_ATTEMPTS {
        let (current, stored) = load(shared, device).await?;
        if let Some(expected) = expected {
            current.check_version(expected)?;
        }
        let next = current.apply(change, &shared.settings.shadow, unix_now_ms())?;
        let record = ShadowRecord {
            product_id: device.product_id.clone(),
            name: device.device_name.clone(),
            reported: Value::Object(next.reported.clone()).to_string(),
            desired: Value::Object(next.desired.clone()).to_string(),
            version: next.version,
            updated_at_ms: next.timestamp_ms,
        };
        if shared
            .store
            .put_shadow(&record, stored)
            .await
            .map_err(internal)?
        {
            return Ok(next);
        }
    }
    Err(ShadowError::Internal(format!(
        "the shadow of {device} kept changing; gave up after {WRITE_ATTEMPTS} attempts"
    )))
}

fn internal(err: StoreError) -> ShadowError {
    ShadowError::Internal(err.to_string())
}
