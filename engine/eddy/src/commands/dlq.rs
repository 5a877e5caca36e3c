//! `eddy dlq …`: rule action queues and dead letters through Eddy's delivery actions
//! (DescribeDeliveryQueues, ListDeadLetters, DescribeDeadLetter, RedriveDeadLetters).

use serde_json::{Value, json};

use super::manage::client;
use super::output::{cell, json as pretty, table};
use crate::cli::DlqCommand;
use crate::config::Config;

fn rows<'a>(out: &'a Value, key: &str) -> &'a [Value] {
    out[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

pub async fn run(config: &Config, command: DlqCommand) -> anyhow::Result<String> {
    match command {
        DlqCommand::Queues { api } => {
            let out = client(config, &api)?
                .call("DescribeDeliveryQueues", &json!({}))
                .await?;
            if api.json {
                return Ok(pretty(&out));
            }
            let lines = rows(&out, "Queues")
                .iter()
                .map(|q| {
                    [
                        "Queue",
                        "PendingRows",
                        "PendingBytes",
                        "DeadLetters",
                        "Attached",
                    ]
                    .iter()
                    .map(|k| cell(q.get(*k)))
                    .collect()
                })
                .collect();
            Ok(table(
                &[
                    "queue",
                    "pending rows",
                    "pending bytes",
                    "dead letters",
                    "attached",
                ],
                lines,
            ))
        }
        DlqCommand::List {
            queue,
            offset,
            limit,
            api,
        } => {
            let mut params = json!({ "Offset": offset, "Limit": limit });
            if let Some(queue) = queue {
                params["Queue"] = Value::String(queue);
            }
            let out = client(config, &api)?
                .call("ListDeadLetters", &params)
                .await?;
            if api.json {
                return Ok(pretty(&out));
            }
            let lines = rows(&out, "DeadLetters")
                .iter()
                .map(|d| {
                    ["Queue", "Seq", "Rows", "Attempts", "Error"]
                        .iter()
                        .map(|k| cell(d.get(*k)))
                        .collect()
                })
                .collect();
            Ok(table(&["queue", "seq", "rows", "attempts", "error"], lines))
        }
        DlqCommand::Show { queue, seq, api } => {
            let out = client(config, &api)?
                .call("DescribeDeadLetter", &json!({ "Queue": queue, "Seq": seq }))
                .await?;
            Ok(if api.json {
                pretty(&out)
            } else {
                pretty(&out["DeadLetter"])
            })
        }
        DlqCommand::Redrive { queue, seq, api } => {
            let mut params = json!({ "Queue": queue });
            if let Some(seq) = seq {
                params["Seq"] = json!(seq);
            }
            let out = client(config, &api)?
                .call("RedriveDeadLetters", &params)
                .await?;
            Ok(if api.json {
                pretty(&out)
            } else {
                format!(
                    "redrove {} dead letter(s) of {queue}",
                    cell(out.get("Redriven"))
                )
            })
        }
    }
}
