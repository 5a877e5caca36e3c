//! One row of the `logs` table and its Arrow schema.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryBuilder, Int64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// What a row records (Tencent's `Scene`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scene {
    Connect,
    Disconnect,
    Auth,
    Subscribe,
    Publish,
    /// A line of the device SDK's own log, uploaded by the device.
    Sdk,
}

impl Scene {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::Disconnect => "DISCONNECT",
            Self::Auth => "AUTH",
            Self::Subscribe => "SUBSCRIBE",
            Self::Publish => "PUBLISH",
            Self::Sdk => "SDK",
        }
    }
}

/// One row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Unix milliseconds.
    pub time_ms: i64,
    pub scene: Scene,
    /// `success` or `fail`.
    pub result: &'static str,
    pub product_id: Option<String>,
    pub device_name: Option<String>,
    pub client_id: String,
    pub client_ip: Option<String>,
    pub topic: Option<String>,
    /// Human-readable: "device connected", "subscribed to …", the refusal's reason…
    pub content: String,
    /// The message, for publish rows when payloads are kept.
    pub payload: Option<Vec<u8>>,
    /// Where a message came from: `device`, `api`, `client` (Tencent's `SrcType`).
    pub source: Option<&'static str>,
    /// An SDK log line's level (`ERR`, `WRN`, `INF`, `DBG`).
    pub level: Option<String>,
}

/// The `logs` table's columns.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time_ms", DataType::Int64, false),
        Field::new("request_id", DataType::Utf8, false),
        Field::new("scene", DataType::Utf8, false),
        Field::new("result", DataType::Utf8, false),
        Field::new("product_id", DataType::Utf8, true),
        Field::new("device_name", DataType::Utf8, true),
        Field::new("client_id", DataType::Utf8, false),
        Field::new("client_ip", DataType::Utf8, true),
        Field::new("topic", DataType::Utf8, true),
        Field::new("content", DataType::Utf8, false),
        Field::new("payload", DataType::Binary, true),
        Field::new("source", DataType::Utf8, true),
        Field::new("level", DataType::Utf8, true),
    ]))
}

/// Rows as one batch; `request_id`s are `<time_ms>-<seq>`, unique within a file name's
/// prefix `first`.
pub(crate) fn batch(
    rows: &[LogRecord],
    first_seq: u64,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut time = Int64Builder::new();
    let mut ids = StringBuilder::new();
    let mut scene = StringBuilder::new();
    let mut result = StringBuilder::new();
    let mut product = StringBuilder::new();
    let mut device = StringBuilder::new();
    let mut client = StringBuilder::new();
    let mut ip = StringBuilder::new();
    let mut topic = StringBuilder::new();
    let mut content = StringBuilder::new();
    let mut payload = BinaryBuilder::new();
    let mut source = StringBuilder::new();
    let mut level = StringBuilder::new();
    for (i, r) in rows.iter().enumerate() {
        time.append_value(r.time_ms);
        ids.append_value(format!("{}-{}", r.time_ms, first_seq + i as u64));
        scene.append_value(r.scene.as_str());
        result.append_value(r.result);
        product.append_option(r.product_id.as_deref());
        device.append_option(r.device_name.as_deref());
        client.append_value(&r.client_id);
        ip.append_option(r.client_ip.as_deref());
        topic.append_option(r.topic.as_deref());
        content.append_value(&r.content);
        payload.append_option(r.payload.as_deref());
        source.append_option(r.source);
        level.append_option(r.level.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(ids.finish()),
        Arc::new(scene.finish()),
        Arc::new(result.finish()),
        Arc::new(product.finish()),
        Arc::new(device.finish()),
        Arc::new(client.finish()),
        Arc::new(ip.finish()),
        Arc::new(topic.finish()),
        Arc::new(content.finish()),
        Arc::new(payload.finish()),
        Arc::new(source.finish()),
        Arc::new(level.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}
