//! Turning a batch of accepted messages into a rule's input batch.
//!
//! Each JSON payload is read once, by the `scan` module: one pass over the bytes that
//! descends only into what a referenced path needs, stops once every referenced value is
//! found, and yields where each value's raw text lies without building a document tree
//! (projection pushdown into the decoder). The BENCHMARKS-ANCHORS.md probe shows JSON
//! decoding is the whole cost of a rule, so nothing else is parsed, and nothing is
//! allocated per payload beyond the Arrow builders' own growth.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{
    ArrayRef, AsArray, BinaryArray, BooleanBuilder, Float64Builder, Int64Array, RecordBatch,
    RecordBatchOptions, StringBuilder, new_null_array,
};

use crate::batch::{self, MessageBatch};
use crate::columns::{InputColumn, JsonPath, Meta, Repr};
use crate::scan::{Found, Kind, PathTrie, Scanner, number_value};
use crate::{CompiledRule, RuleError};

/// The payload paths of a rule and, per input column, which path it reads.
#[derive(Debug)]
pub(crate) struct PathPlan {
    trie: PathTrie,
    /// For each input column, the slot of its path in the scanner's answer.
    slot: Vec<Option<usize>>,
    /// For each input column, whether it is the first column of its path: a missing
    /// field is counted once, however many representations the rule reads it in.
    first_of_path: Vec<bool>,
}

impl PathPlan {
    pub(crate) fn new(columns: &[InputColumn]) -> Self {
        let mut distinct: Vec<&JsonPath> = Vec::new();
        let mut slot = Vec::with_capacity(columns.len());
        for c in columns {
            slot.push(match c {
                InputColumn::Path(p, _) => Some(match distinct.iter().position(|d| *d == p) {
                    Some(i) => i,
                    None => {
                        distinct.push(p);
                        distinct.len() - 1
                    }
                }),
                InputColumn::Meta(_) => None,
            });
        }
        let first_of_path = slot
            .iter()
            .enumerate()
            .map(|(i, s)| s.is_some() && !slot[..i].contains(s))
            .collect();
        Self {
            trie: PathTrie::new(&distinct),
            slot,
            first_of_path,
        }
    }
}

enum Builder {
    Utf8(StringBuilder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
}

impl Builder {
    fn for_path(repr: Repr, rows: usize) -> Self {
        match repr {
            Repr::Num => Self::F64(Float64Builder::with_capacity(rows)),
            Repr::Bool => Self::Bool(BooleanBuilder::with_capacity(rows)),
            Repr::Json | Repr::Text => Self::Utf8(StringBuilder::with_capacity(rows, rows * 8)),
        }
    }

    fn append_null(&mut self) {
        match self {
            Self::Utf8(b) => b.append_null(),
            Self::F64(b) => b.append_null(),
            Self::Bool(b) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Self::Utf8(mut b) => Arc::new(b.finish()),
            Self::F64(mut b) => Arc::new(b.finish()),
            Self::Bool(mut b) => Arc::new(b.finish()),
        }
    }
}

/// A found string's text: the bytes between its quotes, unescaped only when it holds an
/// escape (the one case that allocates). `None` if it is not valid UTF-8.
fn string_text<'a>(raw: &'a [u8], kind: Kind) -> Option<Cow<'a, str>> {
    match kind {
        Kind::String => std::str::from_utf8(raw.get(1..raw.len() - 1)?)
            .ok()
            .map(Cow::Borrowed),
        _ => sonic_rs::from_slice::<String>(raw).ok().map(Cow::Owned),
    }
}

/// Appends one payload value in its column's representation. Returns false when the
/// value does not fit the representation (a type mismatch, appended as NULL).
fn append_value(builder: &mut Builder, repr: Repr, payload: &[u8], value: Found) -> bool {
    let Some(raw) = payload.get(value.start..value.end) else {
        builder.append_null();
        return false;
    };
    let is_string = matches!(value.kind, Kind::String | Kind::EscapedString);
    match (builder, value.kind) {
        (b, Kind::Null) => {
            b.append_null();
            true
        }
        (Builder::Utf8(b), kind) => {
            let text = if repr == Repr::Text && is_string {
                string_text(raw, kind)
            } else {
                std::str::from_utf8(raw).ok().map(Cow::Borrowed)
            };
            let ok = text.is_some();
            b.append_option(text);
            ok
        }
        (Builder::F64(b), kind) => {
            let parsed = match kind {
                Kind::Number => number_value(raw),
                // Tencent-like leniency: "31" compares as 31.
                _ if is_string => string_text(raw, kind).and_then(|s| s.trim().parse::<f64>().ok()),
                _ => None,
            };
            match parsed.filter(|v| v.is_finite()) {
                Some(v) => {
                    b.append_value(v);
                    true
                }
                None => {
                    b.append_null();
                    false
                }
            }
        }
        (Builder::Bool(b), kind) => {
            let parsed = match kind {
                Kind::True => Some(true),
                Kind::False => Some(false),
                Kind::String if raw == b"\"true\"" => Some(true),
                Kind::String if raw == b"\"false\"" => Some(false),
                _ => None,
            };
            b.append_option(parsed);
            parsed.is_some()
        }
    }
}

impl CompiledRule {
    /// Builds this rule's input batch from a batch of accepted messages: the metadata
    /// columns the rule references are the message batch's own arrays (shared, not
    /// copied), payload columns are decoded from its payload column. Never fails on
    /// payload content: a missing field, a value of the wrong type or a payload that is
    /// not JSON becomes NULL and is counted in [`stats`](Self::stats).
    pub fn decode(&self, batch: &MessageBatch) -> Result<RecordBatch, RuleError> {
        let messages = batch.record_batch();
        let rows = messages.num_rows();
        let payloads = messages
            .column(batch::PAYLOAD)
            .as_binary_opt::<i32>()
            .ok_or_else(|| RuleError::Internal("payload column is not Binary".into()))?;
        let mut builders: Vec<Option<Builder>> = self
            .columns
            .iter()
            .map(|c| match c {
                InputColumn::Path(_, repr) => Some(Builder::for_path(*repr, rows)),
                InputColumn::Meta(_) => None,
            })
            .collect();
        let plan = &self.paths;
        let (mut not_json, mut missing, mut mismatched) = (0u64, 0u64, 0u64);

        if plan.trie.slots() > 0 {
            let mut scanner = Scanner::default();
            let mut found = vec![None; plan.trie.slots()];
            for payload in payloads.iter() {
                let is_json =
                    payload.is_some_and(|p| scanner.scan(p, &plan.trie, &mut found).is_ok());
                if !is_json {
                    not_json += 1;
                    found.fill(None);
                }
                let payload = payload.unwrap_or_default();
                let columns = self.columns.iter().zip(&mut builders);
                for (((column, builder), slot), first) in
                    columns.zip(&plan.slot).zip(&plan.first_of_path)
                {
                    let (InputColumn::Path(_, repr), Some(b), Some(slot)) = (column, builder, slot)
                    else {
                        continue;
                    };
                    match found.get(*slot).copied().flatten() {
                        Some(v) => {
                            if !append_value(b, *repr, payload, v) {
                                mismatched += 1;
                            }
                        }
                        None => {
                            if is_json && *first {
                                missing += 1;
                            }
                            b.append_null();
                        }
                    }
                }
            }
        }
        let c = &self.counters;
        c.rows.fetch_add(rows as u64, Ordering::Relaxed);
        c.not_json.fetch_add(not_json, Ordering::Relaxed);
        c.missing_fields.fetch_add(missing, Ordering::Relaxed);
        c.type_mismatches.fetch_add(mismatched, Ordering::Relaxed);
        let arrays = self
            .columns
            .iter()
            .zip(builders)
            .map(|(column, builder)| match (column, builder) {
                (_, Some(b)) => b.finish(),
                (InputColumn::Meta(meta), None) => meta_column(*meta, messages, payloads),
                // Not reached: every path column has a builder.
                (c @ InputColumn::Path(..), None) => new_null_array(&c.data_type(), rows),
            })
            .collect();
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(self.input_schema()),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }

    /// [`decode`](Self::decode), then [`evaluate`](Self::evaluate).
    pub fn run(&self, batch: &MessageBatch) -> Result<RecordBatch, RuleError> {
        self.evaluate(&self.decode(batch)?)
    }

    /// [`run`](Self::run), also returning the input row each output row came from (its
    /// metadata — topic, device, QoS, seq — travels with the row to the actions).
    pub fn run_selected(
        &self,
        batch: &MessageBatch,
    ) -> Result<(RecordBatch, Vec<usize>), RuleError> {
        let (output, selection) = self.evaluate_selecting(&self.decode(batch)?)?;
        let sources: Vec<usize> = match selection {
            Some(mask) => (0..mask.len())
                .filter(|&i| arrow::array::Array::is_valid(&mask, i) && mask.value(i))
                .collect(),
            None => (0..batch.num_rows()).collect(),
        };
        if sources.len() != output.num_rows() {
            return Err(RuleError::Internal(format!(
                "{} output rows for {} selected input rows",
                output.num_rows(),
                sources.len()
            )));
        }
        Ok((output, sources))
    }
}

/// A metadata column of the rule's input: the message batch's array itself, except the
/// payload length, which is read off the payload column's offsets.
fn meta_column(meta: Meta, messages: &RecordBatch, payloads: &BinaryArray) -> ArrayRef {
    let index = match meta {
        Meta::Topic => batch::TOPIC,
        Meta::ProductId => batch::PRODUCT_ID,
        Meta::DeviceName => batch::DEVICE_NAME,
        Meta::ClientIp => batch::CLIENT_IP,
        Meta::Qos => batch::QOS,
        Meta::TimestampMs => batch::TIMESTAMP_MS,
        Meta::Payload => batch::PAYLOAD,
        Meta::PayloadLen => {
            let lengths: Int64Array = payloads
                .offsets()
                .windows(2)
                .map(|w| i64::from(w[1] - w[0]))
                .collect();
            return Arc::new(lengths);
        }
    };
    Arc::clone(messages.column(index))
}
