//! The management subcommands: each is one or two Cloud API calls and a printout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::Context as _;
use eddy_core::secret::ExposeSecret;
use serde_json::{Value, json};

use super::output::{cell, fields, json as pretty, table};
use crate::cli::{ApiArgs, AuthKind, DeviceCommand, ProductCommand, TopicPolicyCommand};
use crate::client::{ApiClient, Credentials};
use crate::config::Config;

/// Where the local hub's API is, seen from this machine.
fn local_endpoint(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// Builds a client from flags/env, then the config's admin key, then the credentials file.
pub fn client(config: &Config, args: &ApiArgs) -> anyhow::Result<ApiClient> {
    let endpoint = args
        .endpoint
        .clone()
        .unwrap_or_else(|| local_endpoint(config.api.listen));
    let credentials = match (&args.secret_id, &args.secret_key) {
        (Some(id), Some(key)) => Credentials::new(id.clone(), key.clone()),
        _ => match (&config.api.admin_secret_id, &config.api.admin_secret_key) {
            (Some(id), Some(key)) => Credentials::new(id.clone(), key.expose_secret()),
            _ => {
                let path = config.admin_credentials_path();
                Credentials::from_file(&path).with_context(|| {
                    format!(
                        "no API key given: pass --secret-id/--secret-key (or EDDY_SECRET_ID/\
                         EDDY_SECRET_KEY), or run where {} is readable",
                        path.display()
                    )
                })?
            }
        },
    };
    Ok(ApiClient::new(&endpoint, credentials)?)
}

async fn call(client: &ApiClient, action: &str, params: Value) -> anyhow::Result<Value> {
    Ok(client.call(action, &params).await?)
}

const PRODUCT_FIELDS: &[(&str, &str)] = &[
    ("ProductId", "/ProductId"),
    ("ProductName", "/ProductName"),
    ("EncryptionType", "/ProductProperties/EncryptionType"),
    ("Description", "/ProductProperties/ProductDescription"),
    ("RegisterType", "/ProductProperties/RegisterType"),
    ("ProductSecret", "/ProductProperties/ProductSecret"),
];

fn encryption_label(code: &str) -> &'static str {
    match code {
        "1" => "cert",
        "2" => "key",
        _ => "?",
    }
}

pub async fn product(config: &Config, command: ProductCommand) -> anyhow::Result<String> {
    match command {
        ProductCommand::Create {
            name,
            auth,
            description,
            api,
        } => {
            let client = client(config, &api)?;
            let encryption = match auth {
                AuthKind::Key => "2",
                AuthKind::Cert => "1",
            };
            let out = call(
                &client,
                "CreateProduct",
                json!({
                    "ProductName": name,
                    "ProductProperties": {
                        "EncryptionType": encryption,
                        "ProductDescription": description,
                    },
                }),
            )
            .await?;
            Ok(if api.json {
                pretty(&out)
            } else {
                fields(&out, PRODUCT_FIELDS)
            })
        }
        ProductCommand::List { offset, limit, api } => {
            let client = client(config, &api)?;
            let out = call(
                &client,
                "DescribeProducts",
                json!({ "Offset": offset, "Limit": limit }),
            )
            .await?;
            if api.json {
                return Ok(pretty(&out));
            }
            let rows = out["Products"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    vec![
                        cell(p.get("ProductId")),
                        cell(p.get("ProductName")),
                        encryption_label(&cell(p.pointer("/ProductProperties/EncryptionType")))
                            .to_owned(),
                        cell(p.pointer("/ProductMetadata/CreationDate")),
                    ]
                })
                .collect();
            Ok(format!(
                "{}\n{} product(s) in all",
                table(&["ProductId", "ProductName", "Auth", "Created"], rows),
                cell(out.get("TotalCount"))
            ))
        }
        ProductCommand::Show { product_id, api } => {
            let client = client(config, &api)?;
            let out = call(
                &client,
                "DescribeProduct",
                json!({ "ProductId": product_id }),
            )
            .await?;
            Ok(if api.json {
                pretty(&out)
            } else {
                fields(&out, PRODUCT_FIELDS)
            })
        }
        ProductCommand::Delete { product_id, api } => {
            let client = client(config, &api)?;
            let out = call(&client, "DeleteProduct", json!({ "ProductId": product_id })).await?;
            Ok(if api.json {
                pretty(&out)
            } else {
                format!("deleted product {product_id}")
            })
        }
    }
}

const DEVICE_FIELDS: &[(&str, &str)] = &[
    ("DeviceName", "/DeviceName"),
    ("Online", "/Online"),
    ("EnableState", "/EnableState"),
    ("DevicePsk", "/DevicePsk"),
    ("CreateTime", "/CreateTime"),
    ("LoginTime", "/LoginTime"),
    ("ClientIP", "/ClientIP"),
    ("Version", "/Version"),
];

fn online_label(code: Option<i64>) -> &'static str {
    match code {
        Some(0) => "offline",
        Some(1) => "online",
        Some(3) => "inactive",
        _ => "?",
    }
}

pub async fn device(config: &Config, command: DeviceCommand) -> anyhow::Result<String> {
    match command {
        DeviceCommand::Create {
            product_id,
            device_name,
            psk,
            api,
        } => {
            let client = client(config, &api)?;
            let mut params = json!({ "ProductId": product_id, "DeviceName": device_name });
            if let Some(psk) = psk {
                params["DefinedPsk"] = Value::String(psk);
            }
            let out = call(&client, "CreateDevice", params).await?;
            if api.json {
                return Ok(pretty(&out));
            }
            let mut text = fields(
                &out,
                &[("DeviceName", "/DeviceName"), ("DevicePsk", "/DevicePsk")],
            );
            for (label, key) in [
                ("certificate", "DeviceCert"),
                (
                    "private key (not stored by the hub: keep it now)",
                    "DevicePrivateKey",
                ),
            ] {
                let pem = cell(out.get(key));
                if !pem.is_empty() {
                    text.push_str(&format!("\n{label}:\n{pem}"));
                }
            }
            Ok(text)
        }
        DeviceCommand::List {
            product_id,
            offset,
            limit,
            name,
            api,
        } => {
            let client = client(config, &api)?;
            let mut params = json!({ "ProductId": product_id, "Offset": offset, "Limit": limit });
            if let Some(name) = name {
                params["DeviceName"] = Value::String(name);
            }
            let out = call(&client, "DescribeDevices", params).await?;
            if api.json {
                return Ok(pretty(&out));
            }
            let rows = out["Devices"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|d| {
                    vec![
                        cell(d.get("DeviceName")),
                        online_label(d.get("Online").and_then(Value::as_i64)).to_owned(),
                        if d.get("EnableState").and_then(Value::as_i64) == Some(1) {
                            "enabled".to_owned()
                        } else {
                            "disabled".to_owned()
                        },
                        cell(d.get("CreateTime")),
                    ]
                })
                .collect();
            Ok(format!(
                "{}\n{} device(s) in all",
                table(&["DeviceName", "Online", "State", "Created"], rows),
                cell(out.get("TotalCount"))
            ))
        }
        DeviceCommand::Show {
            product_id,
            device_name,
            api,
        } => {
            let client = client(config, &api)?;
            let out = call(
                &client,
                "DescribeDevice",
                json!({ "ProductId": product_id, "DeviceName": device_name }),
            )
            .await?;
            Ok(if api.json {
                pretty(&out)
            } else {
                fields(&out, DEVICE_FIELDS)
            })
        }
        DeviceCommand::Delete {
            product_id,
            device_name,
            api,
        } => {
            let client = client(config, &api)?;
            let out = call(
                &client,
                "DeleteDevice",
                json!({ "ProductId": product_id, "DeviceName": device_name }),
            )
            .await?;
            Ok(if api.json {
                pretty(&out)
            } else {
                format!("deleted device {product_id}/{device_name}")
            })
        }
        DeviceCommand::Disable {
            product_id,
            device_names,
            api,
        } => set_enabled(config, &product_id, device_names, false, &api).await,
        DeviceCommand::Enable {
            product_id,
            device_names,
            api,
        } => set_enabled(config, &product_id, device_names, true, &api).await,
    }
}

async fn set_enabled(
    config: &Config,
    product_id: &str,
    names: Vec<String>,
    enabled: bool,
    api: &ApiArgs,
) -> anyhow::Result<String> {
    let client = client(config, api)?;
    let count = names.len();
    let out = call(
        &client,
        "UpdateDevicesEnableState",
        json!({ "ProductId": product_id, "DeviceNames": names, "Status": i64::from(enabled) }),
    )
    .await?;
    Ok(if api.json {
        pretty(&out)
    } else {
        format!(
            "{} {count} device(s) of product {product_id}",
            if enabled { "enabled" } else { "disabled" }
        )
    })
}

fn privilege_label(code: Option<i64>) -> &'static str {
    match code {
        Some(1) => "pub",
        Some(2) => "sub",
        Some(3) => "pub+sub",
        _ => "?",
    }
}

pub async fn topic_policy(config: &Config, command: TopicPolicyCommand) -> anyhow::Result<String> {
    match command {
        TopicPolicyCommand::Create {
            product_id,
            topic,
            privilege,
            api,
        } => {
            let client = client(config, &api)?;
            let out = call(
                &client,
                "CreateTopicPolicy",
                json!({ "ProductId": product_id, "TopicName": topic, "Privilege": privilege.code() }),
            )
            .await?;
            Ok(if api.json {
                pretty(&out)
            } else {
                format!("created topic policy {product_id}/${{deviceName}}/{topic}")
            })
        }
        TopicPolicyCommand::List { product_id, api } => {
            let client = client(config, &api)?;
            let out = call(
                &client,
                "DescribeTopicPolicies",
                json!({ "ProductId": product_id }),
            )
            .await?;
            if api.json {
                return Ok(pretty(&out));
            }
            let rows = out["TopicPolicies"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    vec![
                        cell(t.get("TopicName")),
                        privilege_label(t.get("Privilege").and_then(Value::as_i64)).to_owned(),
                        if t.get("IsDefault").and_then(Value::as_bool) == Some(true) {
                            "default".to_owned()
                        } else {
                            "custom".to_owned()
                        },
                    ]
                })
                .collect();
            Ok(table(&["TopicName", "Privilege", "Kind"], rows))
        }
    }
}
