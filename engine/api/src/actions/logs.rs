//! ListLog, ListLogPayload, ListSDKLog (Tencent's), QueryDeviceLogs (Eddy's: SQL over
//! the `logs` table). Tencent's `Keywords` are `key:value` pairs and words, space-separated: keys
//! `requestid`, `productid`, `devicename`, `scene` (ListLogPayload: `topic` too); words
//! must appear in the row's content (ListLog) or topic (ListLogPayload). `Context` is where
//! the next page starts; `Listover` says there is none.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use super::object;
use crate::ApiState;
use crate::error::ApiError;
use crate::params::Params;

/// Default and largest page (`MaxNum`).
const DEFAULT_MAX_NUM: i64 = 50;
const LARGEST_MAX_NUM: i64 = 1000;

fn hook(state: &ApiState) -> Result<&dyn crate::logs::LogsHook, ApiError> {
    state.logs.as_deref().ok_or_else(|| {
        ApiError::new(
            "FailedOperation",
            "This hub keeps no device logs ([logs] enabled = false).",
        )
    })
}

/// A SQL string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A LIKE pattern matching `word` anywhere, with `%`, `_` and `\` taken literally.
fn contains(column: &str, word: &str) -> String {
    let mut escaped = String::new();
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!(
        "{column} LIKE {} ESCAPE '\\'",
        literal(&format!("%{escaped}%"))
    )
}

struct Search {
    min: i64,
    max: i64,
    conditions: Vec<String>,
    offset: i64,
    limit: i64,
}

/// Which rows a listing shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// ListLog: device events (not the SDK's own lines).
    Events,
    /// ListLogPayload: messages.
    Payloads,
    /// ListSDKLog: lines devices uploaded.
    Sdk,
}

/// Reads MinTime, MaxTime, Keywords, Context, MaxNum into SQL conditions.
fn search(p: &Params, words_column: &str, rows: Rows) -> Result<Search, ApiError> {
    let min = p.i64("MinTime")?;
    let max = p.i64("MaxTime")?;
    let keywords = p.opt_str("Keywords")?.unwrap_or_default();
    let offset = match p.opt_str("Context")?.filter(|c| !c.is_empty()) {
        Some(context) => context
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| {
                ApiError::invalid("Context", "must be a Context an earlier answer gave")
            })?,
        None => 0,
    };
    let limit = p.opt_i64("MaxNum")?.unwrap_or(DEFAULT_MAX_NUM);
    p.finish()?;
    if min > max {
        return Err(ApiError::invalid("MinTime", "must not be after MaxTime"));
    }
    if !(1..=LARGEST_MAX_NUM).contains(&limit) {
        return Err(ApiError::invalid(
            "MaxNum",
            format!("must be 1–{LARGEST_MAX_NUM}"),
        ));
    }
    let mut conditions = vec![format!("time_ms BETWEEN {min} AND {max}")];
    conditions.push(
        match rows {
            Rows::Events => "scene <> 'SDK'",
            Rows::Payloads => "scene = 'PUBLISH'",
            Rows::Sdk => "scene = 'SDK'",
        }
        .to_owned(),
    );
    for token in keywords.split_whitespace() {
        match token.split_once(':') {
            Some((key, value)) => {
                let column = match key.to_ascii_lowercase().as_str() {
                    "requestid" if rows != Rows::Sdk => "request_id",
                    "productid" => "product_id",
                    "devicename" => "device_name",
                    "scene" if rows == Rows::Events => "scene",
                    "topic" if rows == Rows::Payloads => "topic",
                    "loglevel" if rows == Rows::Sdk => "level",
                    other => {
                        return Err(ApiError::invalid(
                            "Keywords",
                            format!("{other:?} is not a key that can be searched"),
                        ));
                    }
                };
                let value = if column == "scene" || column == "level" {
                    value.to_ascii_uppercase()
                } else {
                    value.to_owned()
                };
                conditions.push(format!("{column} = {}", literal(&value)));
            }
            None => conditions.push(contains(words_column, token)),
        }
    }
    Ok(Search {
        min,
        max,
        conditions,
        offset,
        limit,
    })
}

async fn page(
    state: &ApiState,
    s: &Search,
    columns: &str,
) -> Result<(Vec<Map<String, Value>>, i64, bool), ApiError> {
    let hook = hook(state)?;
    let filter = s.conditions.join(" AND ");
    let count = hook
        .query(
            &format!("SELECT COUNT(*) AS n FROM logs WHERE {filter}"),
            Some(s.min),
            Some(s.max),
        )
        .await?;
    let total = count
        .first()
        .and_then(|r| r.get("n"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let rows = hook
        .query(
            &format!(
                "SELECT {columns} FROM logs WHERE {filter} ORDER BY time_ms DESC, request_id DESC LIMIT {} OFFSET {}",
                s.limit, s.offset
            ),
            Some(s.min),
            Some(s.max),
        )
        .await?;
    let over = s.offset + i64::try_from(rows.len()).unwrap_or(0) >= total;
    Ok((rows, total, over))
}

fn text(row: &Map<String, Value>, key: &str) -> String {
    match row.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// One page of `columns`, each row made an item by `item`, with Tencent's `Context`
/// (where the next page starts, empty when none) and `Listover`; and the total matching.
async fn listing(
    state: &ApiState,
    s: &Search,
    columns: &str,
    item: impl Fn(&Map<String, Value>) -> Value,
) -> Result<(Map<String, Value>, i64), ApiError> {
    let (rows, total, over) = page(state, s, columns).await?;
    let results: Vec<Value> = rows.iter().map(item).collect();
    let context = s.offset + i64::try_from(results.len()).unwrap_or(0);
    let answer = object(json!({
        "Context": if over { String::new() } else { context.to_string() },
        "Listover": over,
        "Results": results,
    }));
    Ok((answer, total))
}

pub(super) async fn list(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let s = search(p, "content", Rows::Events)?;
    let columns = "time_ms, request_id, scene, result, product_id, device_name, content";
    let (mut answer, total) = listing(state, &s, columns, |r| {
        json!({
            "Content": text(r, "content"),
            "DeviceName": text(r, "device_name"),
            "ProductId": text(r, "product_id"),
            "RequestId": text(r, "request_id"),
            "Result": text(r, "result"),
            "Scene": text(r, "scene"),
            "Time": text(r, "time_ms"),
            "Userid": "",
            "UserId": "",
        })
    })
    .await?;
    answer.insert("TotalCount".into(), json!(total));
    Ok(answer)
}

pub(super) async fn list_payload(
    state: &ApiState,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let s = search(p, "topic", Rows::Payloads)?;
    let columns = "time_ms, request_id, product_id, device_name, client_id, topic, payload, source";
    let (answer, _) = listing(state, &s, columns, |r| {
        // arrow's JSON writer gives binary columns as hex.
        let payload = hex::decode(text(r, "payload")).unwrap_or_default();
        let format = if serde_json::from_slice::<Value>(&payload).is_ok() {
            "json"
        } else {
            "raw"
        };
        json!({
            "Uin": "",
            "ProductId": text(r, "product_id"),
            "DeviceName": text(r, "device_name"),
            "SrcType": text(r, "source"),
            "SrcName": text(r, "client_id"),
            "Topic": text(r, "topic"),
            "PayloadFormatType": format,
            "Payload": BASE64.encode(&payload),
            "RequestId": text(r, "request_id"),
            "DateTime": text(r, "time_ms"),
        })
    })
    .await?;
    Ok(answer)
}

/// ListSDKLog: lines device SDKs uploaded (`/cgi-bin/report-log`, `/device/reportlog`).
pub(super) async fn list_sdk(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let s = search(p, "content", Rows::Sdk)?;
    let columns = "time_ms, request_id, product_id, device_name, level, content";
    let (answer, _) = listing(state, &s, columns, |r| {
        // The line's own time when it has one (`LVL|YYYY-MM-DD HH:MM:SS|…`).
        let content = text(r, "content");
        let date = content
            .split('|')
            .nth(1)
            .filter(|d| d.len() == 19)
            .map_or_else(|| text(r, "time_ms"), str::to_owned);
        json!({
            "ProductId": text(r, "product_id"),
            "DeviceName": text(r, "device_name"),
            "Level": text(r, "level"),
            "DateTime": date,
            "Content": content,
        })
    })
    .await?;
    Ok(answer)
}

/// Eddy's: `Sql` over the `logs` table, optionally within `MinTime`–`MaxTime` (ms).
pub(super) async fn query(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let sql = p.str("Sql")?;
    let min = p.opt_i64("MinTime")?;
    let max = p.opt_i64("MaxTime")?;
    p.finish()?;
    let rows = hook(state)?.query(&sql, min, max).await?;
    Ok(object(json!({ "TotalCount": rows.len(), "Rows": rows })))
}
