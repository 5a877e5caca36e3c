//! Tencent's response envelopes and the API's error type.
//!
//! Every answer — success or failure — is HTTP 200 with `Content-Type: application/json`
//! (exactly: Tencent's Python SDK only looks for errors under that type) and a body
//! `{"Response": {…, "RequestId": "…"}}`; failures carry `"Error": {"Code", "Message"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eddy_registry::RegistryError;
use serde_json::{Map, Value, json};

/// A failure as the caller sees it: a Tencent error code and a message naming the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn missing(field: &str) -> Self {
        Self::new(
            "MissingParameter",
            format!("The request is missing a required parameter `{field}`."),
        )
    }

    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(
            "InvalidParameterValue",
            format!("The value of parameter `{field}` is invalid: {reason}"),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            "InternalError",
            "An internal error occurred; the hub's log has the details.",
        )
    }
}

impl From<RegistryError> for ApiError {
    fn from(err: RegistryError) -> Self {
        if err.is_internal() {
            tracing::error!(error = %err, "registry failure");
            return Self::internal();
        }
        match &err {
            RegistryError::InvalidParameter { field, reason } => Self::invalid(field, reason),
            _ => Self::new(err.code(), err.to_string()),
        }
    }
}

/// Serialises `{"Response": …}` with the given status.
pub fn envelope(status: StatusCode, response: Map<String, Value>) -> Response {
    let body = json!({ "Response": response }).to_string();
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A success: the action's fields plus `RequestId`.
pub fn success(mut fields: Map<String, Value>, request_id: &str) -> Response {
    fields.insert("RequestId".into(), Value::String(request_id.to_owned()));
    envelope(StatusCode::OK, fields)
}

/// A failure, as Tencent sends it (HTTP 200 unless `status` says otherwise).
pub fn failure(err: &ApiError, request_id: &str, status: StatusCode) -> Response {
    let mut fields = Map::new();
    fields.insert(
        "Error".into(),
        json!({ "Code": err.code, "Message": err.message }),
    );
    fields.insert("RequestId".into(), Value::String(request_id.to_owned()));
    envelope(status, fields)
}
