//! Where accepted messages leave the broker for later stages, and how later stages publish
//! back into it — two small traits so the broker never imports the rule engine and the
//! rule engine (or a plugin host) never imports the broker. Only the `eddy` binary wires
//! them together.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use crate::Message;

/// A future a publisher awaits when a later stage is full (back-pressure).
pub type Backpressure = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A future that completes once a later stage has made what it took from a message
/// durable (the rule engine: its output is in the action queues), with the error that
/// made that fail. The broker's acknowledgement waits for it.
pub type Handover = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;

/// What a stage answered when offered a message.
#[derive(Default)]
pub struct Offered {
    /// Await before going on: the stage is full (back-pressure instead of loss).
    pub backpressure: Option<Backpressure>,
    /// Await before acknowledging the message (QoS ≥ 1): the stage's part is durable.
    pub handover: Option<Handover>,
}

impl std::fmt::Debug for Offered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offered")
            .field("backpressure", &self.backpressure.is_some())
            .field("handover", &self.handover.is_some())
            .finish()
    }
}

/// A later stage that sees every message the broker accepts (the rule engine).
pub trait MessageTap: Send + Sync + std::fmt::Debug + 'static {
    /// Offers one accepted message with its publisher's IP address. Cheap when the stage
    /// does not want it (an empty [`Offered`]). When the stage is full, the publisher
    /// awaits `backpressure` and the message is handed over when it completes, so the
    /// publisher slows down instead of the message being lost; the acknowledgement of a
    /// QoS ≥ 1 message waits for `handover`.
    fn offer(&self, message: &Arc<Message>, client_ip: Option<IpAddr>) -> Offered;
}

/// Why a stage's publish did not reach the router.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PublishError(pub String);

/// Publishing into the broker from inside the hub (a rule's republish action), with the
/// hub's authority: no ACL applies, and the message is routed like any accepted one,
/// durably to persistent sessions before this returns.
#[async_trait::async_trait]
pub trait Publish: Send + Sync + std::fmt::Debug + 'static {
    async fn publish(&self, message: Message) -> Result<(), PublishError>;
}
