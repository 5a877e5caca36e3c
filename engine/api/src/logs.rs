//! The device logs as the API sees them (ListLog, ListLogPayload, Eddy's QueryDeviceLogs).
//!
//! Reached through [`LogsHook`], which the `eddy` binary implements over `eddy-logs`, so
//! this crate does not link DataFusion.

use eddy_core::{DeviceId, Message};
use serde_json::{Map, Value};

use crate::error::ApiError;

#[async_trait::async_trait]
pub trait LogsHook: Send + Sync + std::fmt::Debug + 'static {
    /// Runs a read-only SQL statement over the `logs` table, limited to the hours between
    /// `from_ms` and `to_ms`; each result row as a JSON object. A bad statement is an
    /// `InvalidParameterValue` naming the reason.
    async fn query(
        &self,
        sql: &str,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<Vec<Map<String, Value>>, ApiError>;

    /// Records a message the management plane sent to `device` (PublishMessage).
    fn record_downlink(&self, device: &DeviceId, message: &Message);

    /// Records lines of a device SDK's own log, uploaded by the device.
    fn record_sdk_log(&self, device: &DeviceId, lines: &[&str]);
}
