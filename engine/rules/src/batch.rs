//! Accepted messages as one Arrow batch, shared by every rule that reads them.
//!
//! The rule batcher appends each accepted message once; every rule whose topic filter
//! matches then decodes from the same [`MessageBatch`]. The metadata columns a rule
//! references are handed to it as they are (Arc clones of these arrays), so only payload
//! paths cost per-rule work. This module owns the batch's schema; it must never parse
//! payloads (that is each rule's `decode`).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, AsArray, BinaryBuilder, Int64Builder, RecordBatch, StringBuilder, UInt8Builder,
    UInt64Array, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use eddy_core::{DeviceId, Message};

use crate::RuleError;

/// Column positions in [`MessageBatch::schema`].
pub(crate) const TOPIC: usize = 0;
pub(crate) const PRODUCT_ID: usize = 1;
pub(crate) const DEVICE_NAME: usize = 2;
pub(crate) const CLIENT_IP: usize = 3;
pub(crate) const QOS: usize = 4;
pub(crate) const TIMESTAMP_MS: usize = 5;
pub(crate) const SEQ: usize = 6;
pub(crate) const PAYLOAD: usize = 7;

/// Accepted messages as one Arrow batch: the metadata columns every rule may read, and the payload.
#[derive(Debug, Clone)]
pub struct MessageBatch {
    batch: RecordBatch,
}

impl MessageBatch {
    /// `topic` Utf8, `product_id` Utf8 (NULL unless the publisher is a Tencent device
    /// ClientId), `device_name` Utf8 (likewise), `client_ip` Utf8 (NULL when unknown),
    /// `qos` UInt8, `timestamp_ms` Int64 (when the broker accepted the message, Unix ms),
    /// `seq` UInt64 (the batcher's message sequence number), `payload` Binary.
    pub fn schema() -> SchemaRef {
        static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
        Arc::clone(SCHEMA.get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("topic", DataType::Utf8, false),
                Field::new("product_id", DataType::Utf8, true),
                Field::new("device_name", DataType::Utf8, true),
                Field::new("client_ip", DataType::Utf8, true),
                Field::new("qos", DataType::UInt8, false),
                Field::new("timestamp_ms", DataType::Int64, false),
                Field::new("seq", DataType::UInt64, false),
                Field::new("payload", DataType::Binary, false),
            ]))
        }))
    }

    /// Wraps a batch built elsewhere (read back from storage, say). Refused unless its
    /// fields are exactly [`schema`](Self::schema)'s, so `decode` can rely on them.
    pub fn try_new(batch: RecordBatch) -> Result<Self, RuleError> {
        let schema = Self::schema();
        if batch.schema().fields() != schema.fields() {
            return Err(RuleError::Internal(
                "record batch does not have the message batch schema".into(),
            ));
        }
        // Arrow does not enforce non-nullable fields on arrays; decode relies on it.
        if let Some((f, _)) = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .find(|(f, c)| !f.is_nullable() && c.null_count() > 0)
        {
            return Err(RuleError::Internal(format!(
                "message batch column {} holds NULLs",
                f.name()
            )));
        }
        Ok(Self { batch })
    }

    pub fn record_batch(&self) -> &RecordBatch {
        &self.batch
    }

    pub fn into_record_batch(self) -> RecordBatch {
        self.batch
    }

    /// Each row's sequence number, as given to [`MessageBatchBuilder::append`].
    pub fn seqs(&self) -> &UInt64Array {
        self.batch.column(SEQ).as_primitive()
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }
}

/// Appends accepted messages into the columns of a [`MessageBatch`]. Beyond the Arrow
/// builders' own buffers, appending allocates nothing.
#[derive(Debug)]
pub struct MessageBatchBuilder {
    topic: StringBuilder,
    product_id: StringBuilder,
    device_name: StringBuilder,
    client_ip: StringBuilder,
    qos: UInt8Builder,
    timestamp_ms: Int64Builder,
    seq: UInt64Builder,
    payload: BinaryBuilder,
    capacity: usize,
}

impl MessageBatchBuilder {
    /// Room for `rows` messages with typical topic, id and payload sizes; the builders
    /// grow past that as needed.
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            topic: StringBuilder::with_capacity(rows, rows * 32),
            product_id: StringBuilder::with_capacity(rows, rows * 10),
            device_name: StringBuilder::with_capacity(rows, rows * 16),
            client_ip: StringBuilder::with_capacity(rows, rows * 15),
            qos: UInt8Builder::with_capacity(rows),
            timestamp_ms: Int64Builder::with_capacity(rows),
            seq: UInt64Builder::with_capacity(rows),
            payload: BinaryBuilder::with_capacity(rows, rows * 256),
            capacity: rows,
        }
    }

    /// product_id/device_name are split from `message.publisher` when it is a Tencent device ClientId (10-char product id + device name, see eddy_core::DeviceId) without allocating; NULL otherwise.
    pub fn append(&mut self, message: &Message, client_ip: Option<IpAddr>, seq: u64) {
        self.topic.append_value(message.topic.as_str());
        match DeviceId::split_client_id(&message.publisher) {
            Some((product_id, device_name)) => {
                self.product_id.append_value(product_id);
                self.device_name.append_value(device_name);
            }
            None => {
                self.product_id.append_null();
                self.device_name.append_null();
            }
        }
        match client_ip {
            Some(ip) => {
                // Formatted straight into the builder's value buffer: no String.
                // Writing to an Arrow builder cannot fail.
                let _ = write!(self.client_ip, "{ip}");
                self.client_ip.append_value("");
            }
            None => self.client_ip.append_null(),
        }
        self.qos.append_value(message.qos as u8);
        self.timestamp_ms.append_value(message.received_at_ms);
        self.seq.append_value(seq);
        self.payload.append_value(message.payload.as_ref());
    }

    pub fn len(&self) -> usize {
        arrow::array::ArrayBuilder::len(&self.qos)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the rows appended so far; the builder is reusable.
    pub fn finish(&mut self) -> MessageBatch {
        let columns: Vec<Arc<dyn Array>> = vec![
            Arc::new(self.topic.finish()),
            Arc::new(self.product_id.finish()),
            Arc::new(self.device_name.finish()),
            Arc::new(self.client_ip.finish()),
            Arc::new(self.qos.finish()),
            Arc::new(self.timestamp_ms.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.payload.finish()),
        ];
        // Arrow's finish leaves empty builders; give the next batch its room back.
        let rows = self.capacity;
        if rows > 0 {
            *self = Self::with_capacity(rows);
        }
        let batch = RecordBatch::try_new(MessageBatch::schema(), columns)
            .expect("the builders match the message batch schema by construction");
        MessageBatch { batch }
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{Int64Type, UInt8Type};
    use bytes::Bytes;
    use eddy_core::{QoS, Topic};

    use super::*;

    fn msg(publisher: &str, payload: &'static [u8]) -> Message {
        Message {
            topic: Topic::parse("ABCDE12345/dev1/data").expect("topic"),
            payload: Bytes::from_static(payload),
            qos: QoS::ExactlyOnce,
            retain: false,
            publisher: publisher.into(),
            received_at_ms: 1_700_000_000_123,
            properties: None,
        }
    }

    #[test]
    fn columns_hold_the_metadata() {
        let mut b = MessageBatchBuilder::with_capacity(2);
        b.append(
            &msg("ABCDE12345dev1", b"{}"),
            Some("192.0.2.7".parse().expect("ip")),
            7,
        );
        b.append(
            &msg("not-a-device", b"\xff"),
            Some("::1".parse().expect("ip")),
            8,
        );
        b.append(&msg("ABCDE12345", b""), None, 9);
        assert_eq!(b.len(), 3);
        let batch = b.finish();
        assert!(b.is_empty());
        assert_eq!(batch.num_rows(), 3);
        let rb = batch.record_batch();
        assert_eq!(rb.schema(), MessageBatch::schema());
        let s = |i: usize| rb.column(i).as_string::<i32>().iter().collect::<Vec<_>>();
        assert_eq!(s(TOPIC), [Some("ABCDE12345/dev1/data"); 3]);
        assert_eq!(s(PRODUCT_ID), [Some("ABCDE12345"), None, None]);
        assert_eq!(s(DEVICE_NAME), [Some("dev1"), None, None]);
        assert_eq!(s(CLIENT_IP), [Some("192.0.2.7"), Some("::1"), None]);
        assert_eq!(rb.column(QOS).as_primitive::<UInt8Type>().value(0), 2);
        let ts = rb.column(TIMESTAMP_MS).as_primitive::<Int64Type>();
        assert_eq!(ts.value(2), 1_700_000_000_123);
        assert_eq!(batch.seqs().values().as_ref(), [7, 8, 9]);
        let payload = rb.column(PAYLOAD).as_binary::<i32>();
        assert_eq!(payload.value(1), b"\xff");
        assert_eq!(payload.value(2), b"");
    }

    #[test]
    fn the_builder_is_reusable_and_empty_batches_are_fine() {
        let mut b = MessageBatchBuilder::with_capacity(0);
        assert!(b.finish().is_empty());
        b.append(&msg("ABCDE12345dev1", b"1"), None, 1);
        assert_eq!(b.finish().num_rows(), 1);
        b.append(&msg("ABCDE12345dev1", b"2"), None, 2);
        let second = b.finish();
        let payload = second.record_batch().column(PAYLOAD).as_binary::<i32>();
        assert_eq!(payload.value(0), b"2");
        assert_eq!(second.num_rows(), 1);
    }

    #[test]
    fn try_new_checks_the_schema() {
        let mut b = MessageBatchBuilder::with_capacity(1);
        b.append(&msg("ABCDE12345dev1", b"{}"), None, 1);
        let rb = b.finish().into_record_batch();
        assert!(MessageBatch::try_new(rb.clone()).is_ok());
        let projected = rb.project(&[TOPIC, PAYLOAD]).expect("project");
        assert!(MessageBatch::try_new(projected).is_err());
    }
}
