//! The `kafka` connector: librdkafka (through `rdkafka`) producers, one per broker list a
//! destination's grants name (`kafka-brokers`), shared by every destination on that list.
//!
//! `produce` enqueues the whole call's records, then waits until the brokers acknowledged
//! each one (`acks=all`): only then does the plugin — and so the delivery layer — see
//! success. Any failed record fails the call: the batch is retried whole (the records that
//! did arrive carry the row id in their `eddy-message-id` header for de-duplication).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::bindings::eddy::plugin::kafka::KafkaRecord;
use crate::bindings::eddy::plugin::types::ConnectorError;

/// How long one record may take to be acknowledged before the call fails (and the batch is
/// retried by the delivery layer).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The producers of every granted broker list, created on first use.
#[derive(Default)]
pub(crate) struct Producers(Mutex<HashMap<String, FutureProducer>>);

impl std::fmt::Debug for Producers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lists: Vec<String> = self.lock().keys().cloned().collect();
        f.debug_tuple("Producers").field(&lists).finish()
    }
}

impl Producers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, FutureProducer>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, brokers: &str) -> Result<FutureProducer, ConnectorError> {
        let mut producers = self.lock();
        if let Some(p) = producers.get(brokers) {
            return Ok(p.clone());
        }
        let producer: FutureProducer = ClientConfig::new()
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
            .create()
            .map_err(|e| ConnectorError::Invalid(format!("kafka-brokers {brokers:?}: {e}")))?;
        producers.insert(brokers.to_owned(), producer.clone());
        Ok(producer)
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

/// Produces `records` on `brokers` and waits for every acknowledgement.
pub(crate) async fn produce(
    producers: &Producers,
    brokers: &str,
    records: Vec<KafkaRecord>,
) -> Result<(), ConnectorError> {
    let producer = producers.get(brokers)?;
    let mut pending: Vec<DeliveryFuture> = Vec::with_capacity(records.len());
    for record in &records {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut attempt = FutureRecord::to(&record.topic)
            .payload(&record.value)
            .headers(headers);
        if let Some(key) = &record.key {
            attempt = attempt.key(key);
        }
        loop {
            match producer.send_result(attempt) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                // The local queue is full: wait for what is in flight, then enqueue again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    attempt = back;
                    if pending.is_empty() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    } else {
                        await_all(std::mem::take(&mut pending)).await?;
                    }
                }
                Err((error, _)) => return Err(classify(&error)),
            }
        }
    }
    await_all(pending).await
}

async fn await_all(pending: Vec<DeliveryFuture>) -> Result<(), ConnectorError> {
    let mut first_error = None;
    for delivery in pending {
        let outcome = match delivery.await {
            Ok(Ok(_)) => continue,
            Ok(Err((error, _))) => classify(&error),
            Err(_canceled) => ConnectorError::Unavailable("kafka: the producer went away".into()),
        };
        first_error.get_or_insert(outcome);
    }
    first_error.map_or(Ok(()), Err)
}
