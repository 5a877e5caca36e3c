//! # eddy-api — the management plane
//!
//! Tencent Cloud API 3.0 over HTTP (TENCENT-PROTOCOL.md §10), so Tencent's own Cloud API
//! SDKs manage Eddy unchanged:
//!
//! ```text
//! POST / (JSON) or GET /?A=1&B.0=x      X-TC-Action, X-TC-Version, X-TC-Timestamp, Authorization
//!   │
//!   ├─ body ≤ MAX_BODY_BYTES ──────────── else RequestSizeLimitExceeded
//!   ├─ auth::verify (TC3-HMAC-SHA256) ─── else AuthFailure.*
//!   ├─ params::Params (typed reads) ───── else MissingParameter / InvalidParameterValue / UnknownParameter
//!   └─ actions::dispatch ──► eddy_registry ──► eddy_store
//!         │
//!         ▼
//! 200 {"Response": {…, "RequestId"}}  or  200 {"Response": {"Error": {"Code", "Message"}, "RequestId"}}
//! ```
//!
//! This crate never talks to devices; later stages are reached through traits the `eddy`
//! binary wires in: the broker through `eddy_core::Downlink`, the rule engine through
//! [`RuleEngineHook`].

mod actions;
pub mod auth;
pub mod delivery;
pub mod error;
mod firmware;
pub mod logs;
pub mod params;
pub mod register;
pub mod rules;
mod sdk_log;
pub mod tc3;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use eddy_core::Downlink;
use eddy_registry::Registry;
use eddy_store::Store;
use serde_json::{Map, Value};
use tokio::net::TcpListener;

pub use crate::delivery::DeliveryHook;
use crate::error::{ApiError, failure, success};
use crate::params::Params;
pub use crate::rules::{RuleEngineHook, SampleMessage};

/// Largest request body accepted (Tencent's own limit for JSON requests is 10 MB).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// What the API handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub registry: Registry,
    /// The broker, for actions that reach devices (`PublishMessage`); absent when the API
    /// runs without one, and those actions then answer `FailedOperation`.
    pub downlink: Option<Arc<dyn Downlink>>,
    /// Renders the hub's metrics for `GET /metrics`.
    pub metrics: Option<MetricsRenderer>,
    /// The rule engine: checks rules before they are stored and runs what is stored.
    /// Without it, rule writes are checked as far as the registry can and stored, and
    /// `TestTopicRule` answers `FailedOperation`.
    pub rules: Option<Arc<dyn RuleEngineHook>>,
    /// The rule actions' queues and dead letters (`ListDeadLetters`, …); without it those
    /// actions answer `FailedOperation`.
    pub delivery: Option<Arc<dyn DeliveryHook>>,
    /// The device services (shadow, RRPC, broadcast, log level); without them those
    /// actions answer `FailedOperation`.
    pub services: Option<Arc<eddy_services::Services>>,
    /// The device logs (ListLog, …); without them those actions answer `FailedOperation`.
    pub logs: Option<Arc<dyn logs::LogsHook>>,
    /// Nonces of recent dynamic registrations, refused if repeated.
    pub(crate) nonces: Arc<register::Nonces>,
}

/// Produces the `/metrics` body (OpenMetrics text) when scraped.
#[derive(Clone)]
pub struct MetricsRenderer(pub Arc<dyn Fn() -> String + Send + Sync>);

impl std::fmt::Debug for MetricsRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsRenderer")
    }
}

impl ApiState {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            registry: Registry::new(store),
            downlink: None,
            metrics: None,
            rules: None,
            delivery: None,
            services: None,
            logs: None,
            nonces: Arc::default(),
        }
    }

    pub fn with_logs(mut self, logs: Arc<dyn logs::LogsHook>) -> Self {
        self.logs = Some(logs);
        self
    }

    pub fn with_services(mut self, services: Arc<eddy_services::Services>) -> Self {
        self.services = Some(services);
        self
    }

    pub fn with_delivery(mut self, delivery: Arc<dyn DeliveryHook>) -> Self {
        self.delivery = Some(delivery);
        self
    }

    /// Sets how many sub-devices one gateway has at most (Tencent: 500).
    pub fn with_max_sub_devices(mut self, max: i64) -> Self {
        self.registry = self.registry.with_max_sub_devices(max);
        self
    }

    /// Sets how many topic rules the hub holds at most (Tencent's default is 1000).
    pub fn with_max_rules(mut self, max_rules: u64) -> Self {
        self.registry = self.registry.with_max_rules(max_rules);
        self
    }

    pub fn with_rules(mut self, rules: Arc<dyn RuleEngineHook>) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Hands the rule engine every stored rule; `eddy serve` calls it once at start, and
    /// the rule actions after each write. Does nothing without a rule engine.
    pub async fn reload_rules(&self) -> Result<(), eddy_registry::RegistryError> {
        if let Some(hook) = &self.rules {
            hook.reload(self.registry.all_topic_rules().await?);
        }
        Ok(())
    }

    pub fn with_metrics(mut self, metrics: MetricsRenderer) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn with_downlink(mut self, downlink: Arc<dyn Downlink>) -> Self {
        self.downlink = Some(downlink);
        self
    }
}

/// The API's routes: the Cloud API endpoint at `/`, Prometheus metrics at `/metrics`, and
/// a JSON 404 elsewhere.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", axum::routing::any(cloud_api))
        .route("/metrics", axum::routing::get(metrics))
        .route("/device/register", axum::routing::post(register::register))
        .route(
            "/register/dev",
            axum::routing::post(register::register_legacy),
        )
        .route(
            "/cgi-bin/report-log",
            axum::routing::post(sdk_log::report_legacy),
        )
        .route("/device/reportlog", axum::routing::post(sdk_log::report))
        .route(
            "/firmware/upload/{product}/{version}",
            axum::routing::put(firmware::upload),
        )
        .route(
            "/firmware/{product}/{version}",
            axum::routing::get(firmware::download),
        )
        .fallback(not_found)
        .with_state(Arc::new(state))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

pub(crate) fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `GET /metrics`: unauthenticated, as Prometheus scrapes it; it carries counts only.
async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    use axum::response::IntoResponse as _;
    match &state.metrics {
        Some(render) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            (render.0)(),
        )
            .into_response(),
        None => not_found(Uri::from_static("/metrics")).await,
    }
}

async fn not_found(uri: Uri) -> Response {
    let err = ApiError::new(
        "ResourceNotFound",
        format!(
            "No such path {}: the Cloud API is served at POST /",
            uri.path()
        ),
    );
    failure(&err, &new_request_id(), StatusCode::NOT_FOUND)
}

async fn cloud_api(
    State(state): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = new_request_id();
    let started = Instant::now();
    let action = headers
        .get("x-tc-action")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    match handle(&state, &method, &uri, &headers, body, &action).await {
        Ok((caller, fields)) => {
            tracing::info!(%action, secret_id = %caller, request_id, elapsed_us = started.elapsed().as_micros(), "api ok");
            success(fields, &request_id)
        }
        Err(err) => {
            tracing::info!(%action, code = %err.code, request_id, elapsed_us = started.elapsed().as_micros(), "api error");
            failure(&err, &request_id, StatusCode::OK)
        }
    }
}

async fn handle(
    state: &ApiState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    action: &str,
) -> Result<(String, Map<String, Value>), ApiError> {
    let lenient = match *method {
        Method::POST => false,
        Method::GET => true,
        _ => {
            return Err(ApiError::new(
                "UnsupportedRequestMethod",
                format!("The request method {method} is not supported; use POST or GET."),
            ));
        }
    };
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                "RequestSizeLimitExceeded",
                format!("The request body exceeds {MAX_BODY_BYTES} bytes."),
            )
        })?;
    if action.is_empty() {
        return Err(ApiError::missing("Action"));
    }
    let version = headers
        .get("x-tc-version")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::missing("Version"))?;
    if version != tc3::VERSION {
        return Err(ApiError::new(
            "NoSuchVersion",
            format!(
                "The API version {version:?} does not exist; Eddy implements {}.",
                tc3::VERSION
            ),
        ));
    }
    let timestamp = auth::request_timestamp(headers)?;
    let query = uri.query().unwrap_or("");
    let caller = auth::verify(
        state.registry.store().as_ref(),
        method.as_str(),
        query,
        headers,
        &body,
        timestamp,
    )
    .await?;

    let map = if lenient {
        let pairs = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        params::from_query_pairs(pairs)?
    } else {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            return Err(ApiError::new(
                "UnsupportedProtocol",
                format!(
                    "POST requests must be Content-Type application/json, got {content_type:?}."
                ),
            ));
        }
        parse_json_object(&body)?
    };
    let params = Params::new(map, lenient);
    let fields = actions::dispatch(state, action, &params).await?;
    Ok((caller.secret_id, fields))
}

fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(
            "InvalidParameter",
            "The request body must be a JSON object.",
        )),
        Err(err) => Err(ApiError::new(
            "InvalidParameter",
            format!("The request body is not valid JSON: {err}."),
        )),
    }
}
