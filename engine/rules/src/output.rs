//! Rule output rows as the JSON objects Tencent forwards to actions.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use base64::Engine;
use serde_json::{Map, Number, Value};

use crate::compile::{JSON_KIND_KEY, JSON_KIND_PAYLOAD, JSON_KIND_RAW};

/// One JSON object per row of a rule's output batch.
///
/// - a selected payload field keeps its JSON value as the device sent it;
/// - `*` spreads the payload object's fields into the row; any other JSON payload becomes
///   `"payload": <that value>`, and a payload that is not JSON `"payload": "<base64>"`
///   (the bytes themselves stay untouched in the batch's `payload` column for actions
///   that take bytes);
/// - Float64 results that are whole numbers below 2⁵³ are written as integers
///   (`temp * 2` → `62`, not `62.0`), as a JavaScript-based engine would;
/// - NULL is written as `null`; binary results as base64.
pub fn rows_as_json(batch: &RecordBatch) -> Vec<Map<String, Value>> {
    let schema = batch.schema();
    let mut rows: Vec<Map<String, Value>> = (0..batch.num_rows()).map(|_| Map::new()).collect();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let kind = field.metadata().get(JSON_KIND_KEY).map(String::as_str);
        let column = normalise(column);
        for (i, row) in rows.iter_mut().enumerate() {
            match kind {
                Some(JSON_KIND_PAYLOAD) => spread_payload(row, field.name(), &column, i),
                Some(JSON_KIND_RAW) => {
                    let v = if column.is_null(i) {
                        Value::Null
                    } else {
                        let text = column.as_string::<i32>().value(i);
                        serde_json::from_str(text)
                            .unwrap_or_else(|_| Value::String(text.to_owned()))
                    };
                    row.insert(field.name().clone(), v);
                }
                _ => {
                    row.insert(field.name().clone(), scalar(&column, i));
                }
            }
        }
    }
    rows
}

/// Casts the types rows_as_json does not read directly to ones it does.
fn normalise(column: &ArrayRef) -> ArrayRef {
    let target = match column.data_type() {
        DataType::Boolean | DataType::Binary | DataType::Utf8 | DataType::Null => None,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            Some(DataType::Int64)
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            Some(DataType::UInt64)
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Some(DataType::Float64),
        DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            Some(DataType::Binary)
        }
        _ => Some(DataType::Utf8),
    };
    match target {
        Some(t) if &t != column.data_type() => cast(column, &t).unwrap_or_else(|_| column.clone()),
        _ => column.clone(),
    }
}

fn spread_payload(row: &mut Map<String, Value>, name: &str, column: &ArrayRef, i: usize) {
    if column.is_null(i) || column.data_type() != &DataType::Binary {
        row.insert(name.to_owned(), Value::Null);
        return;
    }
    let bytes = column.as_binary::<i32>().value(i);
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(fields)) => row.extend(fields),
        Ok(other) => {
            row.insert(name.to_owned(), other);
        }
        Err(_) => {
            row.insert(
                name.to_owned(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            );
        }
    }
}

fn scalar(column: &ArrayRef, i: usize) -> Value {
    if column.is_null(i) {
        return Value::Null;
    }
    match column.data_type() {
        DataType::Boolean => Value::Bool(column.as_boolean().value(i)),
        DataType::Int64 => Value::from(column.as_primitive::<Int64Type>().value(i)),
        DataType::UInt64 => Value::from(column.as_primitive::<UInt64Type>().value(i)),
        DataType::Float64 => float(column.as_primitive::<Float64Type>().value(i)),
        DataType::Binary => Value::String(
            base64::engine::general_purpose::STANDARD.encode(column.as_binary::<i32>().value(i)),
        ),
        DataType::Utf8 => Value::String(column.as_string::<i32>().value(i).to_owned()),
        _ => Value::Null,
    }
}

fn float(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        Value::from(v as i64)
    } else {
        Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}
