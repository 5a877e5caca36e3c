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

/// Several stages that each see every accepted message, offered it in order (the device
/// services, then the rule engine). The publisher waits for every stage that is full, and
/// a QoS ≥ 1 message is acknowledged once every stage that took it has made it durable.
#[derive(Debug)]
pub struct Taps(pub Vec<Arc<dyn MessageTap>>);

impl MessageTap for Taps {
    fn offer(&self, message: &Arc<Message>, client_ip: Option<IpAddr>) -> Offered {
        let mut full = Vec::new();
        let mut durable = Vec::new();
        for tap in &self.0 {
            let offered = tap.offer(message, client_ip);
            full.extend(offered.backpressure);
            durable.extend(offered.handover);
        }
        Offered {
            backpressure: one_or_all(full, |all| {
                Box::pin(async move {
                    for wait in all {
                        wait.await;
                    }
                })
            }),
            handover: one_or_all(durable, |all| {
                Box::pin(async move {
                    for wait in all {
                        wait.await?;
                    }
                    Ok(())
                })
            }),
        }
    }
}

/// `None` for no futures, the future itself for one, `join` of them for more.
fn one_or_all<F>(mut futures: Vec<F>, join: impl FnOnce(Vec<F>) -> F) -> Option<F> {
    match futures.len() {
        0 => None,
        1 => futures.pop(),
        _ => Some(join(futures)),
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;
    use crate::{QoS, Topic};

    /// Records the messages offered to it and answers with a handover outcome.
    #[derive(Debug)]
    struct Stage {
        seen: Mutex<Vec<String>>,
        outcome: Option<Result<(), String>>,
    }

    impl MessageTap for Stage {
        fn offer(&self, message: &Arc<Message>, _: Option<IpAddr>) -> Offered {
            self.seen
                .lock()
                .unwrap()
                .push(message.topic.as_str().to_owned());
            Offered {
                backpressure: None,
                handover: self.outcome.clone().map(|outcome| {
                    let handover: Handover = Box::pin(async move { outcome });
                    handover
                }),
            }
        }
    }

    fn stage(outcome: Option<Result<(), String>>) -> Arc<Stage> {
        Arc::new(Stage {
            seen: Mutex::default(),
            outcome,
        })
    }

    fn message() -> Arc<Message> {
        Arc::new(Message {
            topic: Topic::parse("p/d/data").unwrap(),
            payload: Bytes::from_static(b"{}"),
            qos: QoS::AtLeastOnce,
            retain: false,
            publisher: "pd".into(),
            received_at_ms: 0,
            properties: None,
        })
    }

    #[tokio::test]
    async fn every_stage_sees_the_message_and_every_handover_counts() {
        let (a, b, c) = (stage(Some(Ok(()))), stage(None), stage(Some(Ok(()))));
        let taps = Taps(vec![a.clone(), b.clone(), c.clone()]);
        let offered = taps.offer(&message(), None);
        assert!(offered.backpressure.is_none());
        assert_eq!(offered.handover.unwrap().await, Ok(()));
        for s in [&a, &b, &c] {
            assert_eq!(*s.seen.lock().unwrap(), ["p/d/data"]);
        }

        let failing = Taps(vec![stage(Some(Ok(()))), stage(Some(Err("disk".into())))]);
        let offered = failing.offer(&message(), None);
        assert_eq!(offered.handover.unwrap().await, Err("disk".to_owned()));

        let quiet = Taps(vec![stage(None), stage(None)]);
        let offered = quiet.offer(&message(), None);
        assert!(offered.handover.is_none() && offered.backpressure.is_none());
    }
}
