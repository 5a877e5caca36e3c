//! What one plugin instance's `Store` holds, and the host side of the `types` (the batch
//! resource), `log` and `metrics` interfaces. Connectors are in `connectors.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, RecordBatch, StringArray, UInt8Array, UInt64Array,
};
use eddy_core::destination::{Envelope, Row};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::eddy::plugin::{log, metrics, types};
use crate::destination::Shared;

/// The batch resource a plugin reads: one queue entry (or several merged).
#[derive(Debug)]
pub struct BatchRep(pub(crate) Arc<Envelope>);

/// The data of one instance's `Store`.
pub(crate) struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) shared: Arc<Shared>,
    /// When the current export call started, and how long it has waited in connectors:
    /// the CPU deadline counts only the time the plugin itself runs.
    pub(crate) call_started: Instant,
    pub(crate) host_time: Duration,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("destination", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl HostState {
    pub(crate) fn new(shared: Arc<Shared>, memory_bytes: usize) -> Self {
        Self {
            // No preopened directories, no sockets, no environment, stdio discarded: the
            // plugin reaches the outside only through the connectors.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            shared,
            call_started: Instant::now(),
            host_time: Duration::ZERO,
        }
    }

    /// Time the plugin itself has run in the current call.
    pub(crate) fn guest_time(&self) -> Duration {
        self.call_started.elapsed().saturating_sub(self.host_time)
    }

    pub(crate) fn start_call(&mut self) {
        self.call_started = Instant::now();
        self.host_time = Duration::ZERO;
    }

    pub(crate) fn envelope(&self, batch: &Resource<BatchRep>) -> wasmtime::Result<Arc<Envelope>> {
        Ok(self.table.get(batch)?.0.clone())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn meta(row: &Row) -> types::RowMeta {
    types::RowMeta {
        id: row.id.clone(),
        topic: row.meta.topic.clone(),
        product_id: row.meta.product_id.clone(),
        device_name: row.meta.device_name.clone(),
        qos: row.meta.qos,
        seq: row.meta.seq,
        timestamp_ms: row.meta.timestamp_ms,
        json: row.json,
    }
}

impl types::Host for HostState {}

impl types::HostBatch for HostState {
    async fn len(&mut self, batch: Resource<BatchRep>) -> wasmtime::Result<u32> {
        Ok(u32::try_from(self.envelope(&batch)?.rows.len()).unwrap_or(u32::MAX))
    }

    async fn columns(&mut self, batch: Resource<BatchRep>) -> wasmtime::Result<Vec<String>> {
        Ok(self.envelope(&batch)?.columns.clone())
    }

    async fn row(
        &mut self,
        batch: Resource<BatchRep>,
        index: u32,
    ) -> wasmtime::Result<Option<Vec<u8>>> {
        let envelope = self.envelope(&batch)?;
        Ok(envelope.rows.get(index as usize).map(|r| r.payload.clone()))
    }

    async fn rows(&mut self, batch: Resource<BatchRep>) -> wasmtime::Result<Vec<Vec<u8>>> {
        let envelope = self.envelope(&batch)?;
        Ok(envelope.rows.iter().map(|r| r.payload.clone()).collect())
    }

    async fn meta(
        &mut self,
        batch: Resource<BatchRep>,
        index: u32,
    ) -> wasmtime::Result<Option<types::RowMeta>> {
        let envelope = self.envelope(&batch)?;
        Ok(envelope.rows.get(index as usize).map(meta))
    }

    async fn metas(&mut self, batch: Resource<BatchRep>) -> wasmtime::Result<Vec<types::RowMeta>> {
        let envelope = self.envelope(&batch)?;
        Ok(envelope.rows.iter().map(meta).collect())
    }

    async fn payloads(&mut self, batch: Resource<BatchRep>) -> wasmtime::Result<types::Packed> {
        let envelope = self.envelope(&batch)?;
        pack(envelope.rows.iter().map(|r| r.payload.as_slice()))
    }

    async fn meta_columns(
        &mut self,
        batch: Resource<BatchRep>,
    ) -> wasmtime::Result<types::MetaColumns> {
        let envelope = self.envelope(&batch)?;
        let rows = &envelope.rows;
        let text = |f: fn(&Row) -> &str| pack(rows.iter().map(|r| f(r).as_bytes()));
        Ok(types::MetaColumns {
            ids: text(|r| &r.id)?,
            topics: text(|r| &r.meta.topic)?,
            product_ids: text(|r| &r.meta.product_id)?,
            device_names: text(|r| &r.meta.device_name)?,
            qos: rows.iter().map(|r| r.meta.qos).collect(),
            seqs: rows.iter().map(|r| r.meta.seq).collect(),
            timestamps_ms: rows.iter().map(|r| r.meta.timestamp_ms).collect(),
            json: rows.iter().map(|r| r.json).collect(),
        })
    }

    async fn arrow_ipc(&mut self, batch: Resource<BatchRep>) -> wasmtime::Result<Vec<u8>> {
        let envelope = self.envelope(&batch)?;
        arrow_ipc(&envelope)
    }

    async fn drop(&mut self, batch: Resource<BatchRep>) -> wasmtime::Result<()> {
        self.table.delete(batch)?;
        Ok(())
    }
}

/// `items` packed into one buffer (`types.packed`). Fails past 4 GiB, which no guest could
/// take anyway (its memory is 32-bit).
fn pack<'a>(
    items: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
) -> wasmtime::Result<types::Packed> {
    let total: usize = items.clone().map(<[u8]>::len).sum();
    let too_big = || wasmtime::Error::msg("batch column over 4 GiB");
    u32::try_from(total).map_err(|_| too_big())?;
    let mut data = Vec::with_capacity(total);
    let mut ends = Vec::with_capacity(items.len());
    for item in items {
        data.extend_from_slice(item);
        // Cannot fail: data.len() <= total, checked above.
        ends.push(u32::try_from(data.len()).map_err(|_| too_big())?);
    }
    Ok(types::Packed { data, ends })
}

/// The items of a `types.packed` a guest sent, or why it is malformed (ends that decrease
/// or run past the data).
pub(crate) fn unpack(packed: &types::Packed) -> Result<Vec<&[u8]>, String> {
    let mut start = 0usize;
    packed
        .ends
        .iter()
        .map(|&end| {
            let end = end as usize;
            let item = packed.data.get(start..end).ok_or_else(|| {
                format!(
                    "packed item {start}..{end} outside its {} bytes",
                    packed.data.len()
                )
            })?;
            start = end;
            Ok(item)
        })
        .collect()
}

/// The batch as an Arrow IPC stream (the columns `wit/plugin.wit` documents).
pub(crate) fn arrow_ipc(envelope: &Envelope) -> wasmtime::Result<Vec<u8>> {
    let rows = &envelope.rows;
    let text = |f: fn(&Row) -> &str| -> ArrayRef {
        Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    let batch = RecordBatch::try_from_iter([
        ("id", text(|r| &r.id)),
        ("topic", text(|r| &r.meta.topic)),
        ("product_id", text(|r| &r.meta.product_id)),
        ("device_name", text(|r| &r.meta.device_name)),
        (
            "qos",
            Arc::new(rows.iter().map(|r| r.meta.qos).collect::<UInt8Array>()) as ArrayRef,
        ),
        (
            "seq",
            Arc::new(rows.iter().map(|r| r.meta.seq).collect::<UInt64Array>()) as ArrayRef,
        ),
        (
            "timestamp_ms",
            Arc::new(
                rows.iter()
                    .map(|r| r.meta.timestamp_ms)
                    .collect::<UInt64Array>(),
            ) as ArrayRef,
        ),
        (
            "json",
            Arc::new(rows.iter().map(|r| Some(r.json)).collect::<BooleanArray>()) as ArrayRef,
        ),
        (
            "payload",
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.payload.as_slice()))
                    .collect::<BinaryArray>(),
            ) as ArrayRef,
        ),
    ])?;
    let mut out = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(&batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let destination = self.shared.name.as_str();
        // Plugins cannot flood the hub's log with one giant line.
        let message: String = message.chars().take(4096).collect();
        match level {
            log::Level::Trace => tracing::trace!(destination, "plugin: {message}"),
            log::Level::Debug => tracing::debug!(destination, "plugin: {message}"),
            log::Level::Info => tracing::info!(destination, "plugin: {message}"),
            log::Level::Warn => tracing::warn!(destination, "plugin: {message}"),
            log::Level::Error => tracing::error!(destination, "plugin: {message}"),
        }
        Ok(())
    }
}

impl metrics::Host for HostState {
    async fn counter_add(&mut self, name: String, value: u64) -> wasmtime::Result<()> {
        self.shared.metrics.plugin_counter_add(&name, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{pack, unpack};

    #[test]
    fn packed_items_round_trip_and_malformed_ends_are_refused() {
        let items: [&[u8]; 4] = [b"a", b"", b"bcd", b"\xff\x00"];
        let packed = pack(items.iter().copied()).expect("packed");
        assert_eq!(packed.data, b"abcd\xff\x00");
        assert_eq!(packed.ends, [1, 1, 4, 6]);
        assert_eq!(unpack(&packed).expect("unpacked"), items);

        let mut decreasing = packed.clone();
        decreasing.ends = vec![4, 2];
        assert!(unpack(&decreasing).is_err());
        let mut past_the_data = packed;
        past_the_data.ends.push(7);
        assert!(unpack(&past_the_data).is_err());
    }
}
