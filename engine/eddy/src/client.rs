//! A client of Eddy's Cloud API: signs each call with TC3-HMAC-SHA256 exactly as Tencent's
//! SDKs do. The `eddy` CLI and the end-to-end tests use it.

use std::path::Path;

use eddy_api::tc3;
use eddy_core::SecretString;
use eddy_core::secret::{ExposeSecret, secret};
use eddy_core::time::unix_now;
use serde::Deserialize;
use serde_json::Value;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The hub answered with Tencent's error envelope.
    #[error("{code}: {message} (RequestId {request_id})")]
    Api {
        code: String,
        message: String,
        request_id: String,
    },
    #[error("cannot reach the Eddy API at {endpoint}: {source}")]
    Transport {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the API at {endpoint} answered something that is not a Cloud API response: {detail}")]
    BadResponse { endpoint: String, detail: String },
    #[error("{0}")]
    Setup(String),
}

/// An API key pair.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub secret_id: String,
    pub secret_key: SecretString,
}

impl Credentials {
    pub fn new(secret_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            secret_id: secret_id.into(),
            secret_key: secret(secret_key),
        }
    }

    /// Reads `<data-dir>/admin-credentials.json` as `eddy serve` writes it.
    pub fn from_file(path: &Path) -> Result<Self, ClientError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct File {
            secret_id: String,
            secret_key: String,
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Setup(format!("cannot read {}: {e}", path.display())))?;
        let file: File = serde_json::from_str(&text).map_err(|e| {
            ClientError::Setup(format!(
                "{} is not an Eddy credentials file: {e}",
                path.display()
            ))
        })?;
        Ok(Self::new(file.secret_id, file.secret_key))
    }
}

/// A signed-request client for one hub.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    credentials: Credentials,
}

/// Content type used for calls, as Tencent's SDKs send it.
const CONTENT_TYPE: &str = "application/json";

impl ApiClient {
    /// `endpoint` is `http://host:port` (a trailing `/` is fine).
    pub fn new(endpoint: &str, credentials: Credentials) -> Result<Self, ClientError> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let host = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| {
                ClientError::Setup(format!(
                    "endpoint {endpoint:?} must look like http://HOST:PORT"
                ))
            })?
            .to_owned();
        let http = reqwest::Client::builder()
            .build()
            .map_err(|source| ClientError::Transport {
                endpoint: endpoint.clone(),
                source,
            })?;
        Ok(Self {
            http,
            endpoint,
            host,
            credentials,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Calls `action` with `params` (a JSON object); returns the `Response` object.
    pub async fn call(&self, action: &str, params: &Value) -> Result<Value, ClientError> {
        self.call_at(action, params, unix_now()).await
    }

    /// As [`ApiClient::call`], signed as if sent at `timestamp` (tests use it to age a request).
    pub async fn call_at(
        &self,
        action: &str,
        params: &Value,
        timestamp: i64,
    ) -> Result<Value, ClientError> {
        let body = serde_json::to_vec(params).map_err(|e| ClientError::Setup(e.to_string()))?;
        let authorization = tc3::authorization(&tc3::SignRequest {
            secret_id: &self.credentials.secret_id,
            secret_key: self.credentials.secret_key.expose_secret(),
            service: tc3::SERVICE,
            host: &self.host,
            content_type: CONTENT_TYPE,
            payload: &body,
            timestamp,
        })
        .ok_or_else(|| ClientError::Setup(format!("timestamp {timestamp} has no date")))?;
        let response = self
            .http
            .post(format!("{}/", self.endpoint))
            .header("Host", &self.host)
            .header("Content-Type", CONTENT_TYPE)
            .header("Authorization", authorization)
            .header("X-TC-Action", action)
            .header("X-TC-Version", tc3::VERSION)
            .header("X-TC-Timestamp", timestamp.to_string())
            .body(body)
            .send()
            .await
            .map_err(|source| self.transport(source))?;
        let text = response
            .text()
            .await
            .map_err(|source| self.transport(source))?;
        parse_response(&self.endpoint, &text)
    }

    fn transport(&self, source: reqwest::Error) -> ClientError {
        ClientError::Transport {
            endpoint: self.endpoint.clone(),
            source,
        }
    }
}

/// Unwraps `{"Response": …}`, turning an `Error` into [`ClientError::Api`].
pub fn parse_response(endpoint: &str, text: &str) -> Result<Value, ClientError> {
    let bad = |detail: String| ClientError::BadResponse {
        endpoint: endpoint.to_owned(),
        detail,
    };
    let mut value: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let response = value
        .get_mut("Response")
        .map(Value::take)
        .ok_or_else(|| bad("no Response object".into()))?;
    if let Some(error) = response.get("Error") {
        let field = |name: &str| {
            error
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        return Err(ClientError::Api {
            code: field("Code"),
            message: field("Message"),
            request_id: response
                .get("RequestId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
    }
    Ok(response)
}
