//! SQL over the logs: the hour files in range are read into one in-memory table named
//! `logs`, and DataFusion runs the statement read-only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::context::{SQLOptions, SessionContext};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

use crate::record::schema;
use crate::writer::hour_of;

/// Most bytes of log files one query reads (narrow the time range beyond that).
pub const MAX_QUERY_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The statement is not valid or not allowed (only queries are).
    #[error("{0}")]
    Sql(String),
    /// More logs than one query reads.
    #[error("the query would read {0} bytes of logs; narrow its time range")]
    TooLarge(u64),
    #[error("reading the device logs failed: {0}")]
    Io(String),
}

/// The files of the hours between `from_ms` and `to_ms`, and their total size.
fn files(
    dir: &Path,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> std::io::Result<(Vec<PathBuf>, u64)> {
    let (from, to) = (from_ms.map(hour_of), to_ms.map(hour_of));
    let mut out = Vec::new();
    let mut bytes = 0;
    let Ok(hours) = std::fs::read_dir(dir) else {
        return Ok((out, 0));
    };
    for hour in hours.flatten() {
        let name = hour.file_name().to_string_lossy().into_owned();
        if name.len() != 10 || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if from.as_ref().is_some_and(|f| &name < f) || to.as_ref().is_some_and(|t| &name > t) {
            continue;
        }
        for file in std::fs::read_dir(hour.path())?.flatten() {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "parquet") {
                bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
                out.push(path);
            }
        }
    }
    out.sort();
    Ok((out, bytes))
}

fn read(paths: Vec<PathBuf>) -> Result<Vec<RecordBatch>, LogError> {
    let mut batches = Vec::new();
    for path in paths {
        let file = std::fs::File::open(&path).map_err(|e| LogError::Io(e.to_string()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| LogError::Io(format!("{}: {e}", path.display())))?;
        for batch in reader {
            batches.push(batch.map_err(|e| LogError::Io(format!("{}: {e}", path.display())))?);
        }
    }
    Ok(batches)
}

pub(crate) async fn run(
    dir: &Path,
    sql: &str,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<Vec<Map<String, Value>>, LogError> {
    let dir = dir.to_owned();
    let batches = tokio::task::spawn_blocking(move || {
        let (paths, bytes) =
            files(&dir, from_ms, to_ms).map_err(|e| LogError::Io(e.to_string()))?;
        if bytes > MAX_QUERY_BYTES {
            return Err(LogError::TooLarge(bytes));
        }
        read(paths)
    })
    .await
    .map_err(|e| LogError::Io(e.to_string()))??;
    let table =
        MemTable::try_new(schema(), vec![batches]).map_err(|e| LogError::Io(e.to_string()))?;
    let ctx = SessionContext::new();
    ctx.register_table("logs", Arc::new(table))
        .map_err(|e| LogError::Io(e.to_string()))?;
    // Only queries: no DDL, no DML (COPY … TO would write files), no SET.
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx
        .sql_with_options(sql, options)
        .await
        .map_err(|e| LogError::Sql(e.to_string()))?;
    let results = frame
        .collect()
        .await
        .map_err(|e| LogError::Sql(e.to_string()))?;
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in &results {
        writer
            .write(batch)
            .map_err(|e| LogError::Io(e.to_string()))?;
    }
    writer.finish().map_err(|e| LogError::Io(e.to_string()))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Value> =
        serde_json::from_slice(&bytes).map_err(|e| LogError::Io(e.to_string()))?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match row {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::writer::hour_of;
    use crate::{DeviceLogs, LogRecord, LogSettings, Scene};

    fn row(time_ms: i64, scene: Scene, device: &str) -> LogRecord {
        LogRecord {
            time_ms,
            scene,
            result: "success",
            product_id: Some("ABCDE12345".into()),
            device_name: Some(device.into()),
            client_id: format!("ABCDE12345{device}"),
            client_ip: Some("127.0.0.1".into()),
            topic: None,
            content: format!("{} {device}", scene.as_str()),
            payload: None,
            source: None,
            level: None,
        }
    }

    /// Week-long retention, payloads kept, flushed only when asked or dropped.
    fn settings(dir: &std::path::Path) -> LogSettings {
        LogSettings {
            dir: dir.to_owned(),
            retention: Duration::from_secs(7 * 86_400),
            payloads: true,
            flush_every: Duration::from_secs(3600),
            max_batch: 1000,
            queue: 1000,
        }
    }

    #[tokio::test]
    async fn rows_written_per_hour_and_queried_with_sql() {
        let dir = tempfile::tempdir().unwrap();
        let logs = DeviceLogs::start(settings(dir.path())).unwrap();
        // This hour and the next (older hours would be past the retention and removed).
        let hour = eddy_core::time::unix_now_ms() / 3_600_000 * 3_600_000;
        logs.record(row(hour + 1, Scene::Connect, "d1"));
        logs.record(row(hour + 2, Scene::Subscribe, "d1"));
        logs.record(row(hour + 3_600_000, Scene::Connect, "d2"));
        let rows = logs
            .query(
                "SELECT device_name, COUNT(*) AS n FROM logs GROUP BY device_name ORDER BY device_name",
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["device_name"], "d1");
        assert_eq!(rows[0]["n"], 2);
        // Two hour directories, and a range reads only its hours.
        let (this, next) = (hour_of(hour), hour_of(hour + 3_600_000));
        assert!(dir.path().join(this).is_dir() && dir.path().join(next).is_dir());
        let rows = logs
            .query("SELECT scene FROM logs", Some(hour), Some(hour + 10))
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        // Past the retention: removed.
        let old = dir.path().join("2001010100");
        std::fs::create_dir(&old).unwrap();
        drop(logs);
        crate::writer::remove_expired(dir.path(), Duration::from_secs(86_400)).await;
        assert!(!old.exists());
        assert!(dir.path().join(hour_of(hour)).is_dir());
        let logs = DeviceLogs::start(settings(dir.path())).unwrap();
        // Read-only.
        for bad in [
            "CREATE TABLE x AS SELECT 1",
            "COPY logs TO '/tmp/x.csv'",
            "INSERT INTO logs SELECT * FROM logs",
            "SET datafusion.execution.batch_size = 1",
            "SELEC nonsense",
        ] {
            assert!(logs.query(bad, None, None).await.is_err(), "{bad}");
        }
    }
}
