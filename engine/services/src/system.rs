//! `$sys` (the hub's time, for devices without NTP) and `$log` (the log level the
//! management plane set for a device), Tencent §7.

use eddy_core::{DeviceId, Message, time::unix_now_ms};
use serde_json::{Value, json};

use crate::Shared;
use crate::topics::result_topic;

/// `{"type":"get","resource":["time"]}` → `{"type":"get","time":<s>,"ntptime1":<ms the
/// request arrived>,"ntptime2":<ms the answer left>}`.
pub(crate) async fn answer_time(shared: &Shared, device: &DeviceId, message: &Message) {
    let request: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
    let wants_time = request.get("type").and_then(Value::as_str) == Some("get")
        && request
            .get("resource")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|v| v.as_str() == Some("time")));
    if !wants_time {
        tracing::debug!(%device, "unknown $sys request ignored");
        return;
    }
    let now_ms = unix_now_ms();
    let reply = json!({
        "type": "get",
        "time": now_ms / 1000,
        "ntptime1": message.received_at_ms,
        "ntptime2": now_ms,
    });
    shared.reply(result_topic("sys", device), reply).await;
}

/// `{"type":"get_log_level","clientToken":…}` → `{"clientToken","log_level","result":0,
/// "timestamp":<s>,"type":"get_log_level"}` (Tencent's SDKs read only `log_level`).
pub(crate) async fn answer_log_level(shared: &Shared, device: &DeviceId, message: &Message) {
    let request: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
    if request.get("type").and_then(Value::as_str) != Some("get_log_level") {
        tracing::debug!(%device, "unknown $log request ignored");
        return;
    }
    let token = request.get("clientToken").cloned().unwrap_or(Value::Null);
    let level = match shared
        .store
        .device(&device.product_id, &device.device_name)
        .await
    {
        Ok(Some(record)) => record.log_level,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(%device, error = %err, "reading the device's log level failed");
            let reply = json!({
                "clientToken": token,
                "result": 500,
                "timestamp": unix_now_ms() / 1000,
                "type": "get_log_level",
            });
            shared.reply(result_topic("log", device), reply).await;
            return;
        }
    };
    shared
        .reply(
            result_topic("log", device),
            log_level_message(&token, level),
        )
        .await;
}

fn log_level_message(token: &Value, level: i64) -> Value {
    json!({
        "clientToken": token,
        "log_level": level,
        "result": 0,
        "timestamp": unix_now_ms() / 1000,
        "type": "get_log_level",
    })
}

impl crate::Services {
    /// Tells `device` its new log level (after `UpdateDeviceLogLevel`), in the shape of a
    /// `get_log_level` reply, as Tencent does; false if it is not connected to hear it.
    pub async fn push_log_level(&self, device: &DeviceId, level: i64) -> bool {
        let token = Value::String(format!("{}-level", device.product_id));
        self.shared
            .send_to_device(
                device,
                result_topic("log", device),
                log_level_message(&token, level),
            )
            .await
    }
}
