//! Turning accepted messages into a rule's input batch.
//!
//! Each JSON payload is read once, by sonic-rs's `get_many`: one pass over the bytes that
//! stops descending into anything no referenced path needs, and yields the raw text of
//! each referenced value without building a document tree (projection pushdown into the
//! decoder). The BENCHMARKS-ANCHORS.md probe shows JSON decoding is the whole cost of a
//! rule, so nothing else is parsed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch,
    RecordBatchOptions, StringBuilder,
};
use eddy_core::{DeviceId, Message};
use sonic_rs::{JsonType, JsonValueTrait, LazyValue, PointerNode, PointerTree};

use crate::columns::{InputColumn, JsonPath, Meta, PathSegment, Repr};
use crate::{CompiledRule, RuleError};

/// One accepted message offered to a rule, with what the broker knows of its sender.
#[derive(Debug, Clone, Copy)]
pub struct RuleInput<'a> {
    pub message: &'a Message,
    /// The publishing connection's IP address, for `clientip()`.
    pub client_ip: Option<&'a str>,
}

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
    I64(Int64Builder),
    Bin(BinaryBuilder),
}

impl Builder {
    fn for_column(c: &InputColumn, rows: usize) -> Self {
        match c {
            InputColumn::Meta(Meta::Qos | Meta::TimestampMs | Meta::PayloadLen) => {
                Self::I64(Int64Builder::with_capacity(rows))
            }
            InputColumn::Meta(Meta::Payload) => {
                Self::Bin(BinaryBuilder::with_capacity(rows, rows * 128))
            }
            InputColumn::Meta(_) => Self::Utf8(StringBuilder::with_capacity(rows, rows * 16)),
            InputColumn::Path(_, Repr::Num) => Self::F64(Float64Builder::with_capacity(rows)),
            InputColumn::Path(_, Repr::Bool) => Self::Bool(BooleanBuilder::with_capacity(rows)),
            InputColumn::Path(_, _) => Self::Utf8(StringBuilder::with_capacity(rows, rows * 8)),
        }
    }

    fn append_null(&mut self) {
        match self {
            Self::Utf8(b) => b.append_null(),
            Self::F64(b) => b.append_null(),
            Self::Bool(b) => b.append_null(),
            Self::I64(b) => b.append_null(),
            Self::Bin(b) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Self::Utf8(mut b) => Arc::new(b.finish()),
            Self::F64(mut b) => Arc::new(b.finish()),
            Self::Bool(mut b) => Arc::new(b.finish()),
            Self::I64(mut b) => Arc::new(b.finish()),
            Self::Bin(mut b) => Arc::new(b.finish()),
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
        (b, _) => {
            b.append_null();
            return false;
        }
    }
    true
}

impl CompiledRule {
    /// Builds this rule's input batch from messages: metadata columns from the message,
    /// payload columns decoded from its JSON. Never fails on payload content: a missing
    /// field, a value of the wrong type or a payload that is not JSON becomes NULL and is
    /// counted in [`stats`](Self::stats).
    pub fn decode(&self, inputs: &[RuleInput<'_>]) -> Result<RecordBatch, RuleError> {
        let rows = inputs.len();
        let mut builders: Vec<Builder> = self
            .columns
            .iter()
            .map(|c| Builder::for_column(c, rows))
            .collect();
        let plan = &self.paths;
        let needs_device = self
            .columns
            .iter()
            .any(|c| matches!(c, InputColumn::Meta(Meta::ProductId | Meta::DeviceName)));
        let (mut not_json, mut missing, mut mismatched) = (0u64, 0u64, 0u64);

        for input in inputs {
            let m = input.message;
            let device = needs_device
                .then(|| DeviceId::from_client_id(&m.publisher).ok())
                .flatten();
            let values = if plan.paths > 0 {
                let values = plan.lookup(m.payload.as_ref());
                if values.is_none() {
                    not_json += 1;
                }
                values
            } else {
                None
            };
            let columns = self.columns.iter().zip(&mut builders);
            for (((column, builder), slot), first) in
                columns.zip(&plan.slot).zip(&plan.first_of_path)
            {
                match (column, builder) {
                    (InputColumn::Path(_, repr), b) => {
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
                    (InputColumn::Meta(meta), Builder::Utf8(b)) => match meta {
                        Meta::Topic => b.append_value(m.topic.as_str()),
                        Meta::ProductId => {
                            b.append_option(device.as_ref().map(|d| d.product_id.as_str()));
                        }
                        Meta::DeviceName => {
                            b.append_option(device.as_ref().map(|d| d.device_name.as_str()));
                        }
                        Meta::ClientIp => b.append_option(input.client_ip),
                        _ => b.append_null(),
                    },
                    (InputColumn::Meta(meta), Builder::I64(b)) => match meta {
                        Meta::Qos => b.append_value(m.qos as i64),
                        Meta::TimestampMs => b.append_value(m.received_at_ms),
                        Meta::PayloadLen => {
                            b.append_value(i64::try_from(m.payload.len()).unwrap_or(i64::MAX));
                        }
                        _ => b.append_null(),
                    },
                    (InputColumn::Meta(_), Builder::Bin(b)) => b.append_value(m.payload.as_ref()),
                    (InputColumn::Meta(_), b) => b.append_null(),
                }
            }
        }
        let c = &self.counters;
        c.rows.fetch_add(rows as u64, Ordering::Relaxed);
        c.not_json.fetch_add(not_json, Ordering::Relaxed);
        c.missing_fields.fetch_add(missing, Ordering::Relaxed);
        c.type_mismatches.fetch_add(mismatched, Ordering::Relaxed);
        let arrays = builders.into_iter().map(Builder::finish).collect();
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(self.input_schema()),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}
