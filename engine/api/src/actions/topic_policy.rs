//! CreateTopicPolicy, UpdateTopicPolicy, and Eddy's DescribeTopicPolicies (Tencent's API
//! version 2021-04-08 has no action that lists a product's topic classes).

use eddy_registry::Registry;
use serde_json::{Map, Value, json};

use super::object;
use crate::error::ApiError;
use crate::params::Params;

fn refuse_broker_subscribe(p: &Params) -> Result<(), ApiError> {
    if p.opt_object("BrokerSubscribe")?.is_some() {
        return Err(ApiError::new(
            "UnsupportedOperation",
            "BrokerSubscribe (gateway proxy subscriptions) is not supported yet.",
        ));
    }
    Ok(())
}

pub(super) async fn create(
    registry: &Registry,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let topic = p.str("TopicName")?;
    let privilege = p.i64("Privilege")?;
    refuse_broker_subscribe(p)?;
    p.finish()?;
    registry
        .create_topic_policy(&product_id, &topic, privilege)
        .await?;
    Ok(Map::new())
}

pub(super) async fn update(
    registry: &Registry,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    let topic = p.str("TopicName")?;
    let new_topic = p.opt_str("NewTopicName")?;
    let privilege = p.i64("Privilege")?;
    refuse_broker_subscribe(p)?;
    p.finish()?;
    registry
        .update_topic_policy(&product_id, &topic, new_topic.as_deref(), privilege)
        .await?;
    Ok(Map::new())
}

pub(super) async fn list(registry: &Registry, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let product_id = p.str("ProductId")?;
    p.finish()?;
    let policies = registry.topic_policies(&product_id).await?;
    Ok(object(json!({
        "TotalCount": policies.len(),
        "TopicPolicies": policies.iter().map(|t| json!({
            "TopicName": t.topic_name,
            "Privilege": t.privilege.code(),
            "IsDefault": t.is_default,
        })).collect::<Vec<_>>(),
    })))
}
