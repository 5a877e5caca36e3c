//! # eddy-queue — the hub's embedded durable log
//!
//! Everything Eddy must not lose once it has said "got it" — QoS 1 messages queued for
//! persistent sessions, durable subscriptions, retained messages, and later the rule
//! engine's delivery queues — is written here: named [`Table`]s of ordered keys in one
//! [fjall](https://docs.rs/fjall) database (an LSM tree with a write-ahead journal), so
//! Eddy has no write-ahead log of its own.
//!
//! Writes go through one committer thread that takes every batch waiting at that moment,
//! applies them as one atomic fjall batch and, when any of them asked for it, fsyncs the
//! journal once for all: **group commit**. A publisher waiting for its PUBACK therefore
//! costs one fsync per burst of the whole hub, not one per message.
//!
//! ```text
//! Log::commit(batch, Sync) ──► committer thread: drain all waiting batches
//!                                  ├─ one fjall batch (atomic)
//!                                  ├─ one journal fsync if any caller asked for Sync
//!                                  └─ wake every caller
//! ```
//!
//! Batches are applied in the order they were submitted, so a removal sent after an
//! insertion can never be overtaken by it.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use tokio::sync::{mpsc, oneshot};

pub use fjall::Slice;

/// How many batches one group commit takes at most.
const MAX_GROUP: usize = 4096;

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    #[error("durable log: {0}")]
    Storage(String),
    #[error("durable log is closed")]
    Closed,
}

impl From<fjall::Error> for QueueError {
    fn from(err: fjall::Error) -> Self {
        Self::Storage(err.to_string())
    }
}

/// Whether a commit waits for the journal to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Returns once the data survives a crash of the machine (fsync). For anything the
    /// hub acknowledges.
    Sync,
    /// Returns once applied; survives a crash of the process, and reaches the disk with
    /// the next synced commit. For bookkeeping whose loss only causes a redelivery.
    Buffered,
}

enum Op {
    Insert(Keyspace, Vec<u8>, Vec<u8>),
    Remove(Keyspace, Vec<u8>),
}

/// Writes to commit together, atomically.
#[derive(Default)]
pub struct Batch {
    ops: Vec<Op>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("ops", &self.ops.len())
            .finish()
    }
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, table: &Table, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops
            .push(Op::Insert(table.keyspace.clone(), key.into(), value.into()));
    }

    pub fn remove(&mut self, table: &Table, key: impl Into<Vec<u8>>) {
        self.ops
            .push(Op::Remove(table.keyspace.clone(), key.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

struct Job {
    batch: Batch,
    durability: Durability,
    done: Option<oneshot::Sender<Result<(), QueueError>>>,
}

/// The durable log: a fjall database and its committer thread. Cheap to clone.
#[derive(Clone)]
pub struct Log {
    db: Database,
    /// The committer thread's inbox; the thread ends (after a final fsync) once the last
    /// clone of the log is gone.
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").finish_non_exhaustive()
    }
}

impl Log {
    /// Opens (or creates) the log in `dir` and starts its committer thread.
    pub fn open(dir: &Path) -> Result<Self, QueueError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| QueueError::Storage(format!("creating {}: {e}", dir.display())))?;
        let db = Database::builder(dir)
            // The hub has few cores: compaction must not take them all.
            .worker_threads(1)
            .open()?;
        let (jobs, inbox) = mpsc::channel(MAX_GROUP);
        let committer_db = db.clone();
        std::thread::Builder::new()
            .name("eddy-log-commit".into())
            .spawn(move || commit_loop(&committer_db, inbox))
            .map_err(|e| QueueError::Storage(format!("starting the committer: {e}")))?;
        Ok(Self { db, jobs })
    }

    /// The table `name` (created empty the first time). Names are fixed by the code:
    /// 1–255 characters of `[A-Za-z0-9_-]`.
    pub fn table(&self, name: &str) -> Result<Table, QueueError> {
        let valid = !name.is_empty()
            && name.len() <= 255
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(QueueError::Storage(format!("invalid table name {name:?}")));
        }
        let keyspace = self.db.keyspace(name, KeyspaceCreateOptions::default)?;
        Ok(Table { keyspace })
    }

    /// Commits `batch` atomically, in submission order, and waits as `durability` says.
    pub async fn commit(&self, batch: Batch, durability: Durability) -> Result<(), QueueError> {
        self.start(batch, durability).await?.wait().await
    }

    /// Submits `batch` for commit and returns at once with a handle to wait on: what is
    /// submitted later is applied after it, whether or not anyone waits.
    pub async fn start(&self, batch: Batch, durability: Durability) -> Result<Pending, QueueError> {
        if batch.is_empty() {
            return Ok(Pending::default());
        }
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job {
                batch,
                durability,
                done: Some(done),
            })
            .await
            .map_err(|_| QueueError::Closed)?;
        Ok(Pending {
            commit: Some(result),
            after: Vec::new(),
        })
    }

    /// Queues `batch` for commit without waiting for it (waits only for room in the
    /// committer's queue). Still applied in submission order.
    pub async fn submit(&self, batch: Batch) -> Result<(), QueueError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.jobs
            .send(Job {
                batch,
                durability: Durability::Buffered,
                done: None,
            })
            .await
            .map_err(|_| QueueError::Closed)
    }
}

fn commit_loop(db: &Database, mut inbox: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(64);
    while let Some(first) = inbox.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match inbox.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let result = commit_group(db, &mut group);
        if let Err(err) = &result {
            tracing::error!(error = %err, "durable log commit failed");
        }
        for job in group.drain(..) {
            if let Some(done) = job.done {
                let _ = done.send(result.clone());
            }
        }
    }
    // Everything buffered reaches the disk before the database closes.
    if let Err(err) = db.persist(PersistMode::SyncAll) {
        tracing::error!(error = %err, "durable log: final sync failed");
    }
}

fn commit_group(db: &Database, group: &mut [Job]) -> Result<(), QueueError> {
    let mut batch = db.batch();
    let mut sync = false;
    for job in group.iter_mut() {
        sync |= job.durability == Durability::Sync;
        for op in job.batch.ops.drain(..) {
            match op {
                Op::Insert(keyspace, key, value) => batch.insert(&keyspace, key, value),
                Op::Remove(keyspace, key) => batch.remove(&keyspace, key),
            }
        }
    }
    batch.commit()?;
    if sync {
        db.persist(PersistMode::SyncAll)?;
    }
    Ok(())
}

/// Something else that must be durable before an acknowledgement (another stage's queue).
pub type Durable = std::pin::Pin<Box<dyn Future<Output = Result<(), QueueError>> + Send>>;

/// A submitted commit; [`Pending::wait`] returns once it is as durable as asked — and
/// once every wait added with [`Pending::and`] has completed.
#[derive(Default)]
pub struct Pending {
    commit: Option<oneshot::Receiver<Result<(), QueueError>>>,
    after: Vec<Durable>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("commit", &self.commit.is_some())
            .field("after", &self.after.len())
            .finish()
    }
}

impl Pending {
    /// Also waits for `other` (e.g. the rule engine's action queues).
    pub fn and(mut self, other: Durable) -> Self {
        self.after.push(other);
        self
    }

    pub async fn wait(self) -> Result<(), QueueError> {
        if let Some(result) = self.commit {
            result.await.map_err(|_| QueueError::Closed)??;
        }
        for other in self.after {
            other.await?;
        }
        Ok(())
    }
}

/// One named, ordered key-value table of the log. Reads see every committed batch.
#[derive(Clone)]
pub struct Table {
    keyspace: Keyspace,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Table").field(&self.keyspace.name()).finish()
    }
}

impl Table {
    pub fn get(&self, key: &[u8]) -> Result<Option<Slice>, QueueError> {
        Ok(self.keyspace.get(key)?)
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Slice, Slice), QueueError>> + use<> {
        self.keyspace
            .prefix(prefix)
            .map(|guard| guard.into_inner().map_err(QueueError::from))
    }

    /// The first entry whose key starts with `prefix`.
    pub fn first_with_prefix(&self, prefix: &[u8]) -> Result<Option<(Slice, Slice)>, QueueError> {
        self.prefix(prefix).next().transpose()
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = Result<(Slice, Slice), QueueError>> + use<> {
        self.keyspace
            .iter()
            .map(|guard| guard.into_inner().map_err(QueueError::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_are_ordered_atomic_and_reopenable() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let log = Log::open(dir.path()).expect("open");
            let t = log.table("queue").expect("table");
            let mut b = Batch::new();
            b.insert(&t, b"a1".to_vec(), b"one".to_vec());
            b.insert(&t, b"a2".to_vec(), b"two".to_vec());
            b.insert(&t, b"b1".to_vec(), b"other".to_vec());
            log.commit(b, Durability::Sync).await.expect("commit");
            let mut r = Batch::new();
            r.remove(&t, b"a1".to_vec());
            log.submit(r).await.expect("submit");
            // A synced commit after a submitted one covers it too.
            log.commit(Batch::new(), Durability::Sync)
                .await
                .expect("empty");
            let mut marker = Batch::new();
            marker.insert(&t, b"c".to_vec(), b"".to_vec());
            log.commit(marker, Durability::Sync).await.expect("commit");
            let a: Vec<_> = t
                .prefix(b"a")
                .map(|e| e.expect("read").0.to_vec())
                .collect();
            assert_eq!(a, [b"a2".to_vec()]);
        }
        let log = Log::open(dir.path()).expect("reopen");
        let t = log.table("queue").expect("table");
        let all: Vec<_> = t.iter().map(|e| e.expect("read").0.to_vec()).collect();
        assert_eq!(all, [b"a2".to_vec(), b"b1".to_vec(), b"c".to_vec()]);
        assert_eq!(
            t.first_with_prefix(b"b")
                .expect("read")
                .map(|(_, v)| v.to_vec()),
            Some(b"other".to_vec())
        );
        assert!(log.table("bad name").is_err());
    }

    #[tokio::test]
    async fn many_concurrent_commits_all_land() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path()).expect("open");
        let t = log.table("t").expect("table");
        let mut tasks = Vec::new();
        for i in 0u32..200 {
            let (log, t) = (log.clone(), t.clone());
            tasks.push(tokio::spawn(async move {
                let mut b = Batch::new();
                b.insert(&t, i.to_be_bytes().to_vec(), b"x".to_vec());
                log.commit(b, Durability::Sync).await
            }));
        }
        for task in tasks {
            task.await.expect("join").expect("commit");
        }
        assert_eq!(t.iter().count(), 200);
    }
}
