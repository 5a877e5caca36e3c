//! Firmware files over HTTP, authorised by the signed URL itself (like Tencent's COS URLs):
//!
//! - `PUT /firmware/upload/{ProductId}/{version}?expires=…&sign=…` — the URL `GetCOSURL`
//!   gives; the body is the file. Answers `{"Md5sum","FileSize"}`; `UploadFirmware` then
//!   registers the version with the same MD5 and size.
//! - `GET /firmware/{ProductId}/{version}?expires=…&sign=…` — the URL in `update_firmware`.
//!   One `Range: bytes=a-b` / `bytes=a-` is honoured (206, `Content-Range`), so devices
//!   resume downloads; a last byte past the end is cut to the end (Tencent's C SDK asks
//!   for `bytes=<offset>-<size>`, one byte too many).

use std::collections::HashMap;
use std::io::SeekFrom;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use eddy_core::ProductId;
use eddy_core::time::unix_now;
use eddy_services::Services;
use eddy_services::ota::{UrlPurpose, check_version};
use futures::StreamExt as _;
use md5::Digest as _;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use crate::ApiState;
use crate::error::{ApiError, failure};

/// A refusal, boxed: a `Response` is large to carry through `Result`s.
type Refused = Box<Response>;

fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Refused {
    Box::new(failure(
        &ApiError::new(code, message),
        &crate::new_request_id(),
        status,
    ))
}

/// Checks the URL's signature; the product and version it names, or the refusal.
fn authorise(
    state: &ApiState,
    purpose: UrlPurpose,
    product: &str,
    version: &str,
    query: &HashMap<String, String>,
) -> Result<(Arc<Services>, ProductId), Refused> {
    let forbidden = || {
        refuse(
            StatusCode::FORBIDDEN,
            "AuthFailure.SignatureFailure",
            "The URL's signature is invalid or expired.",
        )
    };
    let services = state.services.clone().ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "This hub stores no firmware.",
        )
    })?;
    let Some(files) = services.firmware_files() else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "This hub stores no firmware.",
        ));
    };
    let product = ProductId::parse(product).map_err(|_| forbidden())?;
    check_version(version).map_err(|_| forbidden())?;
    let expires = query
        .get("expires")
        .and_then(|e| e.parse().ok())
        .ok_or_else(forbidden)?;
    let sign = query.get("sign").ok_or_else(forbidden)?;
    if !files.verify(purpose, &product, version, expires, sign, unix_now()) {
        return Err(forbidden());
    }
    Ok((services, product))
}

/// `PUT /firmware/upload/{product}/{version}`.
pub(crate) async fn upload(
    State(state): State<Arc<ApiState>>,
    Path((product, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    let (services, product) =
        match authorise(&state, UrlPurpose::Upload, &product, &version, &query) {
            Ok(ok) => ok,
            Err(refused) => return *refused,
        };
    match state.registry.store().firmware(&product, &version).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            return *refuse(
                StatusCode::CONFLICT,
                "InvalidParameterValue.FirmwareAlreadyExist",
                format!(
                    "Firmware {version} of {product} is registered already; it cannot be replaced."
                ),
            );
        }
        Err(err) => {
            tracing::error!(error = %err, "reading firmware failed");
            return *refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "The store failed.",
            );
        }
    }
    match store_upload(&services, &product, &version, body).await {
        Ok((md5, size)) => {
            tracing::info!(%product, %version, size, "firmware file uploaded");
            (
                [(header::CONTENT_TYPE, "application/json")],
                json!({"Md5sum": md5, "FileSize": size}).to_string(),
            )
                .into_response()
        }
        Err(refused) => *refused,
    }
}

/// Streams the body to a temporary file (hashing it), then moves it into place.
async fn store_upload(
    services: &Services,
    product: &ProductId,
    version: &str,
    body: Body,
) -> Result<(String, u64), Refused> {
    let files = services.firmware_files().ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "This hub stores no firmware.",
        )
    })?;
    let internal = |err: std::io::Error| {
        tracing::error!(error = %err, "storing a firmware upload failed");
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "The file could not be stored.",
        )
    };
    let limit = services.max_firmware_bytes();
    let temp = files.upload_path(product).map_err(internal)?;
    let mut file = tokio::fs::File::create(&temp).await.map_err(internal)?;
    let mut hasher = md5::Md5::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    let outcome = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterValue",
                    format!("The upload broke off: {e}"),
                )
            })?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "LimitExceeded.FirmwareExceedLimit",
                    format!("A firmware file may have at most {limit} bytes."),
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(internal)?;
        }
        if size == 0 {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValue",
                "The file is empty.",
            ));
        }
        file.sync_all().await.map_err(internal)?;
        tokio::fs::rename(&temp, files.path(product, version))
            .await
            .map_err(internal)?;
        Ok(())
    }
    .await;
    if let Err(refused) = outcome {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(refused);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// `GET /firmware/{product}/{version}`.
pub(crate) async fn download(
    State(state): State<Arc<ApiState>>,
    Path((product, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (services, product) =
        match authorise(&state, UrlPurpose::Download, &product, &version, &query) {
            Ok(ok) => ok,
            Err(refused) => return *refused,
        };
    let missing = || {
        refuse(
            StatusCode::NOT_FOUND,
            "ResourceNotFound.FirmwareNotExist",
            "No such firmware.",
        )
    };
    match state.registry.store().firmware(&product, &version).await {
        Ok(Some(_)) => {}
        Ok(None) => return *missing(),
        Err(err) => {
            tracing::error!(error = %err, "reading firmware failed");
            return *refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "The store failed.",
            );
        }
    }
    let Some(files) = services.firmware_files() else {
        return *missing();
    };
    let Ok(mut file) = tokio::fs::File::open(files.path(&product, &version)).await else {
        return *missing();
    };
    let Ok(size) = file.metadata().await.map(|m| m.len()) else {
        return *missing();
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, size));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
        Some(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(None) => {
            let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return resp;
        }
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    if file.seek(SeekFrom::Start(start)).await.is_err() {
        return *missing();
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(length)));
    let mut resp = (status, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::from_str(&length.to_string()) {
        headers.insert(header::CONTENT_LENGTH, value);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
    {
        headers.insert(header::CONTENT_RANGE, value);
    }
    resp
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range of a `size`-byte file, as the first
/// and last byte; `None` when it cannot be served (start past the end, several ranges,
/// malformed).
fn parse_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // The last n bytes.
        let n: u64 = last.parse().ok()?;
        if n == 0 {
            return None;
        }
        return Some((size.saturating_sub(n), size - 1));
    }
    let start: u64 = first.parse().ok()?;
    let end = if last.is_empty() {
        size - 1
    } else {
        last.parse::<u64>().ok()?.min(size - 1)
    };
    (start <= end && start < size).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(parse_range("bytes=500-", 1000), Some((500, 999)));
        // Tencent's C SDK: the size as the last byte.
        assert_eq!(parse_range("bytes=200-1000", 1000), Some((200, 999)));
        assert_eq!(parse_range("bytes=-10", 1000), Some((990, 999)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=5-2", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}
