//! Turning a batch of accepted messages into a rule's input batch.
//!
//! Each JSON payload is read once, by sonic-rs's `get_many`: one pass over the bytes that
//! stops descending into anything no referenced path needs, and yields the raw text of
//! each referenced value without building a document tree (projection pushdown into the
//! decoder). The BENCHMARKS-ANCHORS.md probe shows JSON decoding is the whole cost of a
//! rule, so nothing else is parsed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{
    ArrayRef, AsArray, BinaryArray, BooleanBuilder, Float64Builder, Int64Array, RecordBatch,
    RecordBatchOptions, StringBuilder, new_null_array,
};
use sonic_rs::{JsonType, JsonValueTrait, LazyValue, PointerNode, PointerTree};

use crate::batch::{self, MessageBatch};
use crate::columns::{InputColumn, JsonPath, Meta, PathSegment, Repr};
use crate::{CompiledRule, RuleError};

/// The payload paths of a rule and, per input column, which path it reads.
#[derive(Debug, Default)]
pub(crate) struct PathPlan {
    tree: PointerTree,
    /// The same paths one by one, for payloads `get_many` refuses as a whole.
    pointers: Vec<Vec<PointerNode>>,
    paths: usize,
    /// For each input column, the index of its path in `get_many`'s answer.
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
        let pointers: Vec<Vec<PointerNode>> = distinct
            .iter()
            .map(|p| {
                p.0.iter()
                    .map(|s| match s {
                        PathSegment::Key(k) => PointerNode::Key(sonic_rs::FastStr::new(k)),
                        PathSegment::Index(i) => PointerNode::Index(*i),
                    })
                    .collect()
            })
            .collect();
        let mut tree = PointerTree::new();
        for p in &pointers {
            tree.add_path(p.iter());
        }
        Self {
            tree,
            paths: distinct.len(),
            pointers,
            slot,
            first_of_path,
        }
    }
}

impl PathPlan {
    /// The referenced values of one payload, in path order; `None` if it is not JSON.
    ///
    /// `get_many` answers in one pass but fails as a whole when one path runs through a
    /// scalar (`a.b` where `a` is 5); only then are the paths looked up one by one, so a
    /// device that changes its payload's shape loses only the fields that moved.
    fn lookup<'de>(&self, payload: &'de [u8]) -> Option<Vec<Option<LazyValue<'de>>>> {
        match sonic_rs::get_many(payload, &self.tree) {
            Ok(values) => Some(values),
            Err(e) if e.is_syntax() || e.is_eof() => None,
            Err(_) => {
                let mut values = Vec::with_capacity(self.pointers.len());
                for p in &self.pointers {
                    match sonic_rs::get(payload, p.iter()) {
                        Ok(v) => values.push(Some(v)),
                        Err(e) if e.is_syntax() || e.is_eof() => return None,
                        Err(_) => values.push(None),
                    }
                }
                Some(values)
            }
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

/// Appends one payload value in its column's representation. Returns false when the
/// value does not fit the representation (a type mismatch, appended as NULL).
fn append_value(builder: &mut Builder, repr: Repr, value: &LazyValue<'_>) -> bool {
    let ty = value.get_type();
    if ty == JsonType::Null {
        builder.append_null();
        return true;
    }
    match (builder, repr) {
        (Builder::Utf8(b), Repr::Json) => b.append_value(value.as_raw_str()),
        (Builder::Utf8(b), _) => match ty {
            JsonType::String => match value.as_str() {
                Some(s) => b.append_value(s),
                None => match sonic_rs::from_str::<String>(value.as_raw_str()) {
                    Ok(s) => b.append_value(s),
                    Err(_) => {
                        b.append_null();
                        return false;
                    }
                },
            },
            _ => b.append_value(value.as_raw_str()),
        },
        (Builder::F64(b), _) => {
            let parsed = match ty {
                JsonType::Number => value.as_raw_str().parse::<f64>().ok(),
                // Tencent-like leniency: "31" compares as 31.
                JsonType::String => value.as_str().and_then(|s| s.trim().parse::<f64>().ok()),
                _ => None,
            };
            match parsed {
                Some(v) if v.is_finite() => b.append_value(v),
                _ => {
                    b.append_null();
                    return false;
                }
            }
        }
        (Builder::Bool(b), _) => {
            let parsed = match ty {
                JsonType::Boolean => value.as_bool(),
                JsonType::String => match value.as_str() {
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    _ => None,
                },
                _ => None,
            };
            match parsed {
                Some(v) => b.append_value(v),
                None => {
                    b.append_null();
                    return false;
                }
            }
        }
    }
    true
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

        if plan.paths > 0 {
            for payload in payloads.iter() {
                let values = payload.and_then(|p| plan.lookup(p));
                if values.is_none() {
                    not_json += 1;
                }
                let columns = self.columns.iter().zip(&mut builders);
                for (((column, builder), slot), first) in
                    columns.zip(&plan.slot).zip(&plan.first_of_path)
                {
                    let (InputColumn::Path(_, repr), Some(b)) = (column, builder) else {
                        continue;
                    };
                    let value = values
                        .as_ref()
                        .and_then(|v| slot.and_then(|s| v.get(s)))
                        .and_then(Option::as_ref);
                    match value {
                        Some(v) => {
                            if !append_value(b, *repr, v) {
                                mismatched += 1;
                            }
                        }
                        None => {
                            if values.is_some() && *first {
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
