//! Printing API responses: a table by default, the raw JSON with `--json`.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

/// A JSON value as a table cell: strings bare, others as JSON.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    table.to_string()
}

/// One object as a two-column table of the named fields (with display labels).
pub fn fields(value: &Value, names: &[(&str, &str)]) -> String {
    let rows = names
        .iter()
        .map(|(label, pointer)| vec![(*label).to_owned(), cell(value.pointer(pointer))])
        .collect();
    table(&["field", "value"], rows)
}

pub fn json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
