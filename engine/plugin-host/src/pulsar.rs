//! The `pulsar` connector: the `pulsar` crate (StreamNative's pulsar-rs), one client per
//! service URL a destination's grants name (`pulsar-url`, `pulsar://host:6650` or
//! `pulsar+ssl://…`), one producer per topic, shared by every destination on that URL.
//!
//! `send` enqueues the whole call's messages on the topic's producer, then waits for every
//! broker receipt: only then does the plugin see success. A failure drops the cached
//! producer (the next call makes a new one) and fails the call, so the batch is retried
//! whole (the messages that did arrive carry the row id in their `eddy-message-id`
//! property for de-duplication).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pulsar::{
    ConnectionRetryOptions, OperationRetryOptions, Producer, Pulsar, TokioExecutor, producer,
};
use tokio::sync::{Mutex, OnceCell};

use crate::bindings::eddy::plugin::pulsar::Message;
use crate::bindings::eddy::plugin::types::ConnectorError;

type SharedProducer = Arc<Mutex<Producer<TokioExecutor>>>;

/// The clients and producers of every granted service URL, created on first use.
#[derive(Default)]
pub(crate) struct Clients {
    /// One cell per URL: connecting to one cluster does not hold up the others.
    clients: std::sync::Mutex<HashMap<String, Arc<OnceCell<Pulsar<TokioExecutor>>>>>,
    producers: Mutex<HashMap<(String, String), SharedProducer>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

fn unavailable(error: pulsar::Error) -> ConnectorError {
    ConnectorError::Unavailable(format!("pulsar: {error}"))
}

impl Clients {
    async fn client(&self, url: &str) -> Result<Pulsar<TokioExecutor>, ConnectorError> {
        if !(url.starts_with("pulsar://") || url.starts_with("pulsar+ssl://")) {
            return Err(ConnectorError::Invalid(format!(
                "pulsar-url {url:?} must start with pulsar:// or pulsar+ssl://"
            )));
        }
        let cell = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(url.to_owned())
            .or_default()
            .clone();
        // A failed connection leaves the cell empty: the next call tries again.
        cell.get_or_try_init(|| async {
            // Fail a call within seconds when the broker is away: the delivery layer
            // retries with its own backoff, and nothing waits here for minutes.
            Box::pin(
                Pulsar::builder(url, TokioExecutor)
                    .with_connection_retry_options(ConnectionRetryOptions {
                        max_retries: 2,
                        connection_timeout: Duration::from_secs(10),
                        ..ConnectionRetryOptions::default()
                    })
                    .with_operation_retry_options(OperationRetryOptions {
                        operation_timeout: Duration::from_secs(30),
                        retry_delay: Duration::from_millis(500),
                        max_retries: Some(3),
                    })
                    .build(),
            )
            .await
            .map_err(unavailable)
        })
        .await
        .cloned()
    }

    async fn producer(&self, url: &str, topic: &str) -> Result<SharedProducer, ConnectorError> {
        let key = (url.to_owned(), topic.to_owned());
        if let Some(p) = self.producers.lock().await.get(&key) {
            return Ok(p.clone());
        }
        let client = self.client(url).await?;
        // pulsar-rs futures are large (≈20 KiB): boxed, not inlined into ours.
        let producer = Box::pin(client.producer().with_topic(topic).build())
            .await
            .map_err(unavailable)?;
        let producer = Arc::new(Mutex::new(producer));
        self.producers.lock().await.insert(key, producer.clone());
        Ok(producer)
    }

    async fn forget(&self, url: &str, topic: &str) {
        self.producers
            .lock()
            .await
            .remove(&(url.to_owned(), topic.to_owned()));
    }
}

/// Sends `messages` on `url` and waits for every receipt.
pub(crate) async fn send(
    clients: &Clients,
    url: &str,
    messages: Vec<Message>,
) -> Result<(), ConnectorError> {
    // One producer per topic; most calls have one topic.
    let mut by_topic: Vec<(String, Vec<Message>)> = Vec::new();
    for m in messages {
        match by_topic.iter_mut().find(|(t, _)| *t == m.topic) {
            Some((_, list)) => list.push(m),
            None => by_topic.push((m.topic.clone(), vec![m])),
        }
    }
    for (topic, messages) in by_topic {
        let outcome = send_topic(clients, url, &topic, messages).await;
        if outcome.is_err() {
            clients.forget(url, &topic).await;
        }
        outcome?;
    }
    Ok(())
}

async fn send_topic(
    clients: &Clients,
    url: &str,
    topic: &str,
    messages: Vec<Message>,
) -> Result<(), ConnectorError> {
    let producer = clients.producer(url, topic).await?;
    let mut producer = producer.lock().await;
    let mut receipts = Vec::with_capacity(messages.len());
    for m in messages {
        let message = producer::Message {
            payload: m.payload,
            properties: m.properties.into_iter().collect(),
            partition_key: m.key,
            ..producer::Message::default()
        };
        receipts.push(
            Box::pin(producer.send_non_blocking(message))
                .await
                .map_err(unavailable)?,
        );
    }
    drop(producer);
    for receipt in receipts {
        receipt.await.map_err(unavailable)?;
    }
    Ok(())
}
