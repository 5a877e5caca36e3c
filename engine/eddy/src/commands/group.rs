//! `eddy group …`: device groups through Eddy's group actions (CreateDeviceGroup,
//! DescribeDeviceGroups, DescribeGroupDevices, AddDevicesToGroup, RemoveDevicesFromGroup,
//! DeleteDeviceGroup).

use serde_json::{Value, json};

use super::manage::client;
use super::output::{cell, json as pretty, table};
use crate::cli::GroupCommand;
use crate::config::Config;

pub async fn run(config: &Config, command: GroupCommand) -> anyhow::Result<String> {
    let members = |product_id: &str, names: &[String]| -> Value {
        names
            .iter()
            .map(|n| json!({"ProductId": product_id, "DeviceName": n}))
            .collect()
    };
    match command {
        GroupCommand::Create {
            name,
            description,
            api,
        } => {
            client(config, &api)?
                .call(
                    "CreateDeviceGroup",
                    &json!({"GroupName": name, "GroupDescription": description}),
                )
                .await?;
            Ok(format!("created device group {name}"))
        }
        GroupCommand::List { api } => {
            let out = client(config, &api)?
                .call("DescribeDeviceGroups", &json!({"Limit": 250}))
                .await?;
            if api.json {
                return Ok(pretty(&out));
            }
            let rows = out["Groups"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|g| {
                    ["GroupName", "DeviceCount", "GroupDescription"]
                        .iter()
                        .map(|k| cell(g.get(*k)))
                        .collect()
                })
                .collect();
            Ok(table(&["group", "devices", "description"], rows))
        }
        GroupCommand::Show { name, product, api } => {
            let mut params = json!({"GroupName": name, "Limit": 250});
            if let Some(product) = product {
                params["ProductId"] = Value::String(product);
            }
            let out = client(config, &api)?
                .call("DescribeGroupDevices", &params)
                .await?;
            if api.json {
                return Ok(pretty(&out));
            }
            let rows = out["Devices"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|d| vec![cell(d.get("ProductId")), cell(d.get("DeviceName"))])
                .collect();
            Ok(table(&["product", "device"], rows))
        }
        GroupCommand::Add {
            name,
            product_id,
            device_names,
            api,
        } => {
            client(config, &api)?
                .call(
                    "AddDevicesToGroup",
                    &json!({"GroupName": name, "Devices": members(&product_id, &device_names)}),
                )
                .await?;
            Ok(format!("added {} device(s) to {name}", device_names.len()))
        }
        GroupCommand::Remove {
            name,
            product_id,
            device_names,
            api,
        } => {
            let out = client(config, &api)?
                .call(
                    "RemoveDevicesFromGroup",
                    &json!({"GroupName": name, "Devices": members(&product_id, &device_names)}),
                )
                .await?;
            Ok(format!(
                "removed {} device(s) from {name}",
                cell(out.get("RemovedCount"))
            ))
        }
        GroupCommand::Delete { name, api } => {
            client(config, &api)?
                .call("DeleteDeviceGroup", &json!({"GroupName": name}))
                .await?;
            Ok(format!("deleted device group {name}"))
        }
    }
}
