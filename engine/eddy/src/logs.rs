//! The device logs wired into the hub: the broker's client events become rows, and the
//! API reaches the logs through [`eddy_api::logs::LogsHook`].

use std::sync::Arc;

use eddy_api::error::ApiError;
use eddy_broker::events::{ClientEvent, ClientEventKind};
use eddy_logs::{DeviceLogs, LogError, LogRecord, Scene};
use serde_json::{Map, Value};
use tokio::sync::broadcast::error::RecvError;

/// Turns each client event into a row, for as long as the broker runs.
pub async fn record_events(
    logs: Arc<DeviceLogs>,
    mut events: tokio::sync::broadcast::Receiver<ClientEvent>,
) {
    loop {
        match events.recv().await {
            Ok(event) => logs.record(row(&event)),
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "the device log fell behind the broker's events; rows lost"
                );
            }
            Err(RecvError::Closed) => return,
        }
    }
}

fn row(event: &ClientEvent) -> LogRecord {
    let (scene, result, content) = match event.kind {
        ClientEventKind::Connected => (Scene::Connect, "success", "connected".to_owned()),
        ClientEventKind::Disconnected => (Scene::Disconnect, "success", "disconnected".to_owned()),
        ClientEventKind::AuthFailed => (
            Scene::Auth,
            "fail",
            format!("CONNECT refused: {}", event.detail),
        ),
        ClientEventKind::Subscribed => (
            Scene::Subscribe,
            if event.detail.contains("refused") {
                "fail"
            } else {
                "success"
            },
            format!("subscribe: {}", event.detail),
        ),
    };
    LogRecord {
        time_ms: event.at_ms,
        scene,
        result,
        product_id: event.device.as_ref().map(|d| d.product_id.to_string()),
        device_name: event.device.as_ref().map(|d| d.device_name.to_string()),
        client_id: event.client_id.to_string(),
        client_ip: Some(event.client_ip.to_string()),
        topic: None,
        content,
        payload: None,
        source: None,
        level: None,
    }
}

/// The API's way into the logs.
#[derive(Debug)]
pub struct LogsApi(pub Arc<DeviceLogs>);

#[async_trait::async_trait]
impl eddy_api::logs::LogsHook for LogsApi {
    async fn query(
        &self,
        sql: &str,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<Vec<Map<String, Value>>, ApiError> {
        self.0
            .query(sql, from_ms, to_ms)
            .await
            .map_err(|err| match err {
                LogError::Sql(why) => ApiError::new(
                    "InvalidParameterValue",
                    format!("The SQL cannot run over the logs: {why}"),
                ),
                LogError::TooLarge(_) => ApiError::new("LimitExceeded", err.to_string()),
                LogError::Io(why) => {
                    tracing::error!(error = %why, "reading the device logs failed");
                    ApiError::internal()
                }
            })
    }

    fn record_downlink(&self, device: &eddy_core::DeviceId, message: &eddy_core::Message) {
        self.0.record_publish(message, Some(device), None, "api");
    }

    fn record_sdk_log(&self, device: &eddy_core::DeviceId, lines: &[&str]) {
        let now = eddy_core::time::unix_now_ms();
        for line in lines {
            // `LVL|time|…` (the C and Java SDKs); else the level is the first 3 characters.
            let level = match line.split_once('|') {
                Some((level, _)) => level,
                None => line.get(..3).unwrap_or(line),
            };
            self.0.record(LogRecord {
                time_ms: now,
                scene: Scene::Sdk,
                result: "success",
                product_id: Some(device.product_id.to_string()),
                device_name: Some(device.device_name.to_string()),
                client_id: device.client_id(),
                client_ip: None,
                topic: None,
                content: (*line).to_owned(),
                payload: None,
                source: Some("sdk"),
                level: Some(level.to_owned()),
            });
        }
    }
}
