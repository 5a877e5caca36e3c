//! Eddy's delivery actions (Tencent has none: it drops a forward after three tries):
//! `DescribeDeliveryQueues`, `ListDeadLetters`, `DescribeDeadLetter`, `RedriveDeadLetters`.

use serde_json::{Map, Value, json};

use super::object;
use crate::error::ApiError;
use crate::params::Params;
use crate::{ApiState, DeliveryHook};

/// Most dead letters one ListDeadLetters page holds.
const MAX_LIMIT: i64 = 100;

fn hook(state: &ApiState) -> Result<&dyn DeliveryHook, ApiError> {
    state.delivery.as_deref().ok_or_else(|| {
        ApiError::new(
            "FailedOperation",
            "This hub runs without the delivery layer (no rule actions).",
        )
    })
}

fn seq(p: &Params, key: &str) -> Result<Option<u64>, ApiError> {
    p.opt_i64(key)?
        .map(|s| u64::try_from(s).map_err(|_| ApiError::invalid(key, "must be 0 or more")))
        .transpose()
}

pub(super) async fn queues(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    p.finish()?;
    let queues = hook(state)?.queues();
    Ok(object(
        json!({ "TotalCount": queues.len(), "Queues": queues }),
    ))
}

pub(super) async fn list(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let queue = p.opt_str("Queue")?;
    let offset = p.opt_i64("Offset")?.unwrap_or(0);
    let limit = p.opt_i64("Limit")?.unwrap_or(20);
    p.finish()?;
    if offset < 0 {
        return Err(ApiError::invalid("Offset", "must be 0 or more"));
    }
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "Limit",
            format!("must be 1 to {MAX_LIMIT}"),
        ));
    }
    let letters = hook(state)?.dead_letters(queue.as_deref(), offset as usize, limit as usize)?;
    Ok(object(json!({ "DeadLetters": letters })))
}

pub(super) async fn describe(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let queue = p.str("Queue")?;
    let seq =
        u64::try_from(p.i64("Seq")?).map_err(|_| ApiError::invalid("Seq", "must be 0 or more"))?;
    p.finish()?;
    match hook(state)?.dead_letter(&queue, seq)? {
        Some(letter) => Ok(object(json!({ "DeadLetter": letter }))),
        None => Err(ApiError::new(
            "ResourceNotFound.DeadLetterNotExist",
            format!("Queue {queue:?} has no dead letter {seq}."),
        )),
    }
}

pub(super) async fn redrive(state: &ApiState, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let queue = p.str("Queue")?;
    let seq = seq(p, "Seq")?;
    p.finish()?;
    let hook = hook(state)?;
    let redriven = hook.redrive(&queue, seq).await?;
    if redriven == 0 && seq.is_some() {
        return Err(ApiError::new(
            "ResourceNotFound.DeadLetterNotExist",
            format!(
                "Queue {queue:?} has no dead letter {}.",
                seq.unwrap_or_default()
            ),
        ));
    }
    Ok(object(json!({ "Redriven": redriven })))
}
