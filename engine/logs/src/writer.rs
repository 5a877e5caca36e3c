//! The writer task: buffers rows, writes them as Parquet files per hour, removes hours
//! past the retention.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tokio::sync::mpsc;

use crate::record::{LogRecord, batch};
use crate::{Command, LogSettings};

/// How often hours past the retention are looked for.
const RETENTION_SWEEP: Duration = Duration::from_secs(600);

/// The hour directory name of a time: `YYYYMMDDHH` (UTC).
pub(crate) fn hour_of(time_ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(time_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour()
    )
}

pub(crate) async fn run(settings: LogSettings, mut rx: mpsc::Receiver<Command>) {
    let mut buffer: Vec<LogRecord> = Vec::new();
    let mut seq: u64 = 0;
    let mut tick = tokio::time::interval(settings.flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep = tokio::time::interval(RETENTION_SWEEP);
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                None => {
                    write(&settings.dir, std::mem::take(&mut buffer), &mut seq).await;
                    return;
                }
                Some(Command::Record(record)) => {
                    buffer.push(*record);
                    if buffer.len() >= settings.max_batch {
                        write(&settings.dir, std::mem::take(&mut buffer), &mut seq).await;
                    }
                }
                Some(Command::Flush(done)) => {
                    write(&settings.dir, std::mem::take(&mut buffer), &mut seq).await;
                    let _ = done.send(());
                }
            },
            _ = tick.tick() => {
                if !buffer.is_empty() {
                    write(&settings.dir, std::mem::take(&mut buffer), &mut seq).await;
                }
            }
            _ = sweep.tick() => remove_expired(&settings.dir, settings.retention).await,
        }
    }
}

/// Writes `rows` as one file per hour they fall in.
async fn write(dir: &Path, rows: Vec<LogRecord>, seq: &mut u64) {
    if rows.is_empty() {
        return;
    }
    let mut by_hour: BTreeMap<String, Vec<LogRecord>> = BTreeMap::new();
    for row in rows {
        by_hour.entry(hour_of(row.time_ms)).or_default().push(row);
    }
    for (hour, rows) in by_hour {
        let first = *seq;
        *seq += rows.len() as u64;
        let dir = dir.join(&hour);
        let written = tokio::task::spawn_blocking(move || write_file(&dir, &rows, first))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Err(err) = written {
            tracing::error!(error = %err, %hour, "writing device logs failed; those rows are lost");
        }
    }
}

fn write_file(dir: &Path, rows: &[LogRecord], first: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = format!("{}-{first}.parquet", rows[0].time_ms);
    let temp: PathBuf = dir.join(format!(".{name}.part"));
    let batch = batch(rows, first).map_err(std::io::Error::other)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let file = std::fs::File::create(&temp)?;
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(std::io::Error::other)?;
    writer.write(&batch).map_err(std::io::Error::other)?;
    writer.close().map_err(std::io::Error::other)?;
    std::fs::rename(&temp, dir.join(name))
}

pub(crate) async fn remove_expired(dir: &Path, retention: Duration) {
    let cutoff_ms = eddy_core::time::unix_now_ms()
        - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
    let cutoff = hour_of(cutoff_ms);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Hour directories sort as text; an hour wholly before the cutoff's goes.
        if name.len() == 10 && name.bytes().all(|b| b.is_ascii_digit()) && name < cutoff {
            match tokio::fs::remove_dir_all(entry.path()).await {
                Ok(()) => {
                    tracing::info!(hour = %name, "device logs past their retention removed");
                }
                Err(err) => {
                    tracing::warn!(hour = %name, error = %err, "removing old device logs failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::hour_of;

    #[test]
    fn hours_are_utc_and_sort_as_text() {
        assert_eq!(hour_of(0), "1970010100");
        assert_eq!(hour_of(1_764_331_200_000), "2025112812");
        assert!(hour_of(1_764_331_200_000) < hour_of(1_764_334_800_000));
    }
}
