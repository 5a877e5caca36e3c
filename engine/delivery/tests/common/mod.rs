//! Test destinations and helpers shared by the delivery tests: a real `eddy_queue::Log`
//! in a temporary directory and a scripted destination that reports every attempt.

#![allow(dead_code)] // Each test binary uses part of it.
#![allow(clippy::panic)] // A destination that panics is one of the test cases.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_delivery::{
    Delivery, DeliveryError, DeliverySettings, Destination, Envelope, QueueId, Row, RowMeta,
};
use eddy_queue::Log;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

/// How long any wait in a test may take before it counts as hung.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Settings with tiny retry pauses so failure tests run in milliseconds.
pub fn fast() -> DeliverySettings {
    DeliverySettings {
        retry_initial: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        ..DeliverySettings::default()
    }
}

pub struct Hub {
    pub dir: tempfile::TempDir,
    pub log: Log,
    pub delivery: Arc<Delivery>,
}

impl Hub {
    pub fn open(settings: DeliverySettings) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path()).expect("log");
        let delivery = Delivery::open(&log, settings).expect("delivery");
        Self { dir, log, delivery }
    }

    /// Shuts the service down, closes the log and opens both again on the same
    /// directory: what a restart of the hub sees.
    pub async fn restart(self, settings: DeliverySettings) -> Self {
        let Self { dir, log, delivery } = self;
        delivery.shutdown().await;
        drop(delivery);
        drop(log);
        let log = reopen(dir.path()).await;
        let delivery = Delivery::open(&log, settings).expect("delivery reopened");
        Self { dir, log, delivery }
    }
}

/// Opens the log again, waiting for the previous committer thread to let go of it.
async fn reopen(path: &std::path::Path) -> Log {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Ok(log) = Log::open(path) {
            return log;
        }
        tokio::task::yield_now().await;
    }
    Log::open(path).expect("reopening the log")
}

pub fn queue(name: &str) -> QueueId {
    QueueId::new(name).expect("queue id")
}

/// `rows` rows with ids `<tag>-0`, `<tag>-1`, … stamped now.
pub fn envelope(tag: &str, rows: usize) -> Envelope {
    let now = u64::try_from(eddy_core::time::unix_now_ms()).expect("clock");
    Envelope {
        columns: vec!["n".into()],
        rows: (0..rows)
            .map(|i| Row {
                id: format!("{tag}-{i}"),
                payload: format!("{{\"n\":{i}}}").into_bytes(),
                json: true,
                meta: RowMeta {
                    topic: "p/d/event".into(),
                    seq: i as u64,
                    timestamp_ms: now,
                    ..RowMeta::default()
                },
            })
            .collect(),
    }
}

pub fn ids(envelope: &Envelope) -> Vec<String> {
    envelope.rows.iter().map(|r| r.id.clone()).collect()
}

/// What a scripted destination does on one attempt.
#[derive(Debug, Clone)]
pub enum Step {
    Ok,
    Fail(DeliveryError),
    Panic,
}

/// One call of a scripted destination.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub ids: Vec<String>,
    pub at: Instant,
}

/// Plays its script, then `then` forever; reports each call before answering. With a
/// gate, each call first takes a permit (tests release them one by one).
#[derive(Debug)]
pub struct Scripted {
    script: Mutex<VecDeque<Step>>,
    then: Step,
    attempts: mpsc::UnboundedSender<Attempt>,
    gate: Option<Arc<Semaphore>>,
}

pub struct Probe {
    pub attempts: mpsc::UnboundedReceiver<Attempt>,
}

impl Probe {
    pub async fn next(&mut self) -> Attempt {
        tokio::time::timeout(PATIENCE, self.attempts.recv())
            .await
            .expect("a delivery attempt in time")
            .expect("destination alive")
    }

    /// Attempts until `rows` row ids were seen in total; returns every attempt.
    pub async fn rows(&mut self, rows: usize) -> Vec<Attempt> {
        let mut seen = Vec::new();
        while seen.iter().map(|a: &Attempt| a.ids.len()).sum::<usize>() < rows {
            seen.push(self.next().await);
        }
        seen
    }

    /// No attempt is waiting.
    pub fn is_idle(&mut self) -> bool {
        self.attempts.try_recv().is_err()
    }
}

impl Scripted {
    pub fn new(script: Vec<Step>, then: Step) -> (Arc<Self>, Probe) {
        Self::build(script, then, None)
    }

    pub fn ok() -> (Arc<Self>, Probe) {
        Self::new(Vec::new(), Step::Ok)
    }

    pub fn gated(gate: Arc<Semaphore>) -> (Arc<Self>, Probe) {
        Self::build(Vec::new(), Step::Ok, Some(gate))
    }

    fn build(script: Vec<Step>, then: Step, gate: Option<Arc<Semaphore>>) -> (Arc<Self>, Probe) {
        let (tx, attempts) = mpsc::unbounded_channel();
        let destination = Arc::new(Self {
            script: Mutex::new(script.into()),
            then,
            attempts: tx,
            gate,
        });
        (destination, Probe { attempts })
    }
}

#[async_trait::async_trait]
impl Destination for Scripted {
    async fn deliver(&self, batch: &Arc<Envelope>) -> Result<(), DeliveryError> {
        let _ = self.attempts.send(Attempt {
            ids: ids(batch),
            at: Instant::now(),
        });
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        let step = self
            .script
            .lock()
            .expect("script")
            .pop_front()
            .unwrap_or_else(|| self.then.clone());
        match step {
            Step::Ok => Ok(()),
            Step::Fail(err) => Err(err),
            Step::Panic => panic!("scripted destination panics"),
        }
    }
}
