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

/// A later stage that sees every message the broker accepts (the rule engine).
pub trait MessageTap: Send + Sync + std::fmt::Debug + 'static {
    /// Offers one accepted message with its publisher's IP address. Cheap when the stage
    /// does not want it. Returns `None` once the stage has it (or does not want it), or a
    /// future to await when the stage is full: the message is handed over when that
    /// future completes, so the publisher slows down instead of the message being lost.
    fn offer(&self, message: &Arc<Message>, client_ip: Option<IpAddr>) -> Option<Backpressure>;
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
