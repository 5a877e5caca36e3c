//! `eddy logs query`: SQL over the device logs through Eddy's QueryDeviceLogs.

use serde_json::{Value, json};

use super::manage::client;
use super::output::{cell, json as pretty, table};
use crate::cli::LogsCommand;
use crate::config::Config;

pub async fn run(config: &Config, command: LogsCommand) -> anyhow::Result<String> {
    match command {
        LogsCommand::Query {
            sql,
            since,
            until,
            api,
        } => {
            let mut params = json!({ "Sql": sql });
            if let Some(since) = since {
                params["MinTime"] = json!(since);
            }
            if let Some(until) = until {
                params["MaxTime"] = json!(until);
            }
            let out = client(config, &api)?
                .call("QueryDeviceLogs", &params)
                .await?;
            if api.json {
                return Ok(pretty(&out));
            }
            let rows = out["Rows"].as_array().cloned().unwrap_or_default();
            // Every column any row has (a NULL leaves the key out), by name.
            let headers: Vec<String> = rows
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|r| r.keys().cloned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let lines = rows
                .iter()
                .map(|r| headers.iter().map(|h| cell(r.get(h))).collect())
                .collect();
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            Ok(format!("{}\n{} row(s)", table(&headers, lines), rows.len()))
        }
    }
}
