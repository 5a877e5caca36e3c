//! The `kafka` connector: librdkafka (through `rdkafka`) producers, one per broker list a
//! destination's grants name (`kafka-brokers`), shared by every destination on that list.
//!
//! `produce` enqueues the whole call's records, then waits until the brokers acknowledged
//! each one (`acks=all`; librdkafka's delivery reports, counted per call): only then does
//! the plugin — and so the delivery layer — see success. Any failed record fails the call:
//! the batch is retried whole (the records that did arrive carry the row id in their
//! `eddy-message-id` header for de-duplication).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};

use crate::bindings::eddy::plugin::types::ConnectorError;

/// How long one record may take to be acknowledged before the call fails (and the batch is
/// retried by the delivery layer).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

type Producer = Arc<ThreadedProducer<Acks>>;

/// The producers of every granted broker list, created on first use.
#[derive(Default)]
pub(crate) struct Producers(Mutex<HashMap<String, Producer>>);

impl std::fmt::Debug for Producers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lists: Vec<String> = self.lock().keys().cloned().collect();
        f.debug_tuple("Producers").field(&lists).finish()
    }
}

impl Producers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Producer>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, brokers: &str) -> Result<Producer, ConnectorError> {
        let mut producers = self.lock();
        if let Some(p) = producers.get(brokers) {
            return Ok(p.clone());
        }
        let producer: ThreadedProducer<Acks> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                MESSAGE_TIMEOUT.as_millis().to_string(),
            )
            // A call hands over a whole batch at once and waits for its acknowledgements:
            // a long linger would only add latency to every call.
            .set("linger.ms", "1")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .create_with_context(Acks)
            .map_err(|e| ConnectorError::Invalid(format!("kafka-brokers {brokers:?}: {e}")))?;
        let producer = Arc::new(producer);
        producers.insert(brokers.to_owned(), producer.clone());
        Ok(producer)
    }
}

/// What one `produce` call waits for: the delivery reports of its records. Every record
/// carries the call (an `Arc`, no allocation per record) and librdkafka's polling thread
/// reports each one here.
#[derive(Debug)]
pub(crate) struct Call {
    /// Records not reported yet, plus one while the call is still enqueuing.
    remaining: AtomicUsize,
    failure: Mutex<Option<ConnectorError>>,
    done: tokio::sync::Notify,
}

impl Call {
    fn report(&self, failure: Option<ConnectorError>) {
        if let Some(failure) = failure {
            self.failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(failure);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }
}

/// The producers' context: routes each delivery report to its call.
pub(crate) struct Acks;

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Arc<Call>;

    fn delivery(&self, result: &DeliveryResult<'_>, call: Arc<Call>) {
        call.report(result.as_ref().err().map(|(error, _)| classify(error)));
    }
}

/// What a failed record means for the call.
fn classify(error: &KafkaError) -> ConnectorError {
    match error.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed,
        ) => ConnectorError::Invalid(format!("kafka: {error}")),
        _ => ConnectorError::Unavailable(format!("kafka: {error}")),
    }
}

/// One record to produce, borrowed from whatever the plugin sent.
pub(crate) struct RecordView<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Vec<(&'a str, &'a [u8])>,
}

/// Produces `records` on `brokers` and waits for every acknowledgement.
pub(crate) async fn produce<'a>(
    producers: &Producers,
    brokers: &str,
    records: impl Iterator<Item = RecordView<'a>>,
) -> Result<(), ConnectorError> {
    let producer = producers.get(brokers)?;
    let call = Arc::new(Call {
        remaining: AtomicUsize::new(1),
        failure: Mutex::new(None),
        done: tokio::sync::Notify::new(),
    });
    for record in records {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(*value),
            });
        }
        let mut attempt = BaseRecord::with_opaque_to(record.topic, call.clone())
            .payload(record.value)
            .headers(headers);
        if let Some(key) = record.key {
            attempt = attempt.key(key);
        }
        // Counted before it is sent: its report may come at once.
        call.remaining.fetch_add(1, Ordering::AcqRel);
        loop {
            match producer.send(attempt) {
                Ok(()) => break,
                // The local queue is full: give the polling thread time to drain it.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    attempt = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                // What was enqueued still goes out; the batch is retried whole.
                Err((error, _)) => return Err(classify(&error)),
            }
        }
    }
    call.report(None);
    loop {
        let done = call.done.notified();
        if call.remaining.load(Ordering::Acquire) == 0 {
            break;
        }
        done.await;
    }
    let failure = call
        .failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    failure.map_or(Ok(()), Err)
}
