//! # eddy-logs — device logs (Tencent's 日志采集)
//!
//! What devices did — connected, disconnected, failed to authenticate, subscribed,
//! published (with the message, when `payloads` is on) — as rows of one table, `logs`,
//! written as Parquet files per hour under `<data-dir>/logs/<YYYYMMDDHH>/` and kept for
//! `retention`. Rows are buffered and written every `flush_every` (or `max_batch` rows);
//! a query first writes what is buffered, so it sees everything recorded before it.
//! Queries are SQL through DataFusion over the hours they name (`SELECT … FROM logs
//! WHERE …`), read-only: no DDL, DML or `COPY`.
//!
//! Logs are diagnostics, not acknowledged data: producers never wait for them. When the
//! writer falls `queue` rows behind, further rows are dropped and counted
//! ([`DeviceLogs::dropped`]), with a warning in the hub's log; rows still buffered when the
//! hub is killed are lost.

mod query;
mod record;
mod tap;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use query::{LogError, MAX_QUERY_BYTES};
pub use record::{LogRecord, Scene, schema};

/// How device logs are kept.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `<data-dir>/logs`.
    pub dir: PathBuf,
    /// How long hourly files are kept (Tencent: 7 days).
    pub retention: Duration,
    /// Whether message contents are kept with publish rows.
    pub payloads: bool,
    /// Buffered rows are written at least this often…
    pub flush_every: Duration,
    /// …or once this many are buffered.
    pub max_batch: usize,
    /// Rows waiting for the writer before new ones are dropped (and counted).
    pub queue: usize,
}

enum Command {
    /// Boxed: a row is much larger than a flush request.
    Record(Box<LogRecord>),
    Flush(oneshot::Sender<()>),
}

/// The device log: where producers send rows and queries are answered.
#[derive(Debug)]
pub struct DeviceLogs {
    tx: mpsc::Sender<Command>,
    settings: LogSettings,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Record(_) => "Record",
            Self::Flush(_) => "Flush",
        })
    }
}

impl DeviceLogs {
    /// Starts the writer (inside a tokio runtime); the directory is created when missing.
    pub fn start(settings: LogSettings) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(&settings.dir)?;
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        tokio::spawn(writer::run(settings.clone(), rx));
        Ok(Arc::new(Self {
            tx,
            settings,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Whether publish rows keep the message.
    pub fn keeps_payloads(&self) -> bool {
        self.settings.payloads
    }

    /// Adds a row; never waits. A full queue drops it and counts it.
    pub fn record(&self, record: LogRecord) {
        if self.tx.try_send(Command::Record(Box::new(record))).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "the device log writer is behind; log rows dropped");
            }
        }
    }

    /// Rows dropped because the writer was behind, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes whatever is buffered.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Runs `sql` over the rows of the hours between `from_ms` and `to_ms` (Unix ms, both
    /// optional); each result row as a JSON object.
    pub async fn query(
        &self,
        sql: &str,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, LogError> {
        self.flush().await;
        query::run(&self.settings.dir, sql, from_ms, to_ms).await
    }
}
