//! Device SDK log upload (what ListSDKLog shows), both protocols Tencent's device SDKs use:
//!
//! - `POST /cgi-bin/report-log` (the C SDKs up to 2020, the older Java SDK): a text body
//!   with a 112-byte header — 40 hex chars of HMAC-SHA1 over everything after them, `P`
//!   (key device) or `C` (certificate device), `###`, the product id (10), the device name
//!   padded with `#` to 48, a 10-digit timestamp — then log lines each ending `\n\f`. The
//!   key is the first 24 characters of the device's PSK *string* (not decoded), or for a
//!   certificate device the first 24 characters of its certificate PEM's second line. The
//!   SDK wants `{"Retcode":0}`. The timestamp may be 0 (the C SDK sends the hub's time when
//!   it has it): this protocol has no replay protection, and none is added.
//! - `POST /device/reportlog` (the current Java SDK, the newer C SDKs): JSON
//!   `{"ProductId","DeviceName","Message":[…]}` (one element per line, or one element of
//!   `\n\f`-separated lines) signed like dynamic registration but under the same 24-char
//!   PSK key, `hmacsha256` or `hmacsha1` (the body hash follows the algorithm); timestamps
//!   within ±300 s and single-use nonces. Answer: `{"Response":{"RequestId"}}`.
//!
//! A line `LVL|YYYY-MM-DD HH:MM:SS|…` gives the row its level and time text.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use eddy_core::DeviceId;
use eddy_core::secret::ExposeSecret as _;
use eddy_store::DeviceRecord;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use crate::ApiState;
use crate::error::{ApiError, failure, success};

/// Largest upload (the SDKs send at most a few KB at a time).
const MAX_BODY_BYTES: usize = 256 * 1024;
/// The legacy body's fixed header.
const HEADER: usize = 112;
/// The SDKs key their log signatures with this many characters of the secret.
const KEY_CHARS: usize = 24;
/// The host Tencent's Java SDK always signs.
const TENCENT_GATEWAY: &str = "ap-guangzhou.gateway.tencentdevices.com";

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// The SDKs' signing key for a device: its PSK string, or its certificate's second PEM
/// line, cut to 24 characters.
fn key_of(device: &DeviceRecord) -> Option<Vec<u8>> {
    let text = match (&device.psk, &device.cert_pem) {
        (Some(psk), _) => psk.expose_secret().to_owned(),
        (None, Some(pem)) => pem.lines().nth(1)?.to_owned(),
        (None, None) => return None,
    };
    Some(text.as_bytes()[..text.len().min(KEY_CHARS)].to_vec())
}

async fn device(state: &ApiState, product: &str, name: &str) -> Result<DeviceRecord, ApiError> {
    Ok(state.registry.device(product, name).await?)
}

fn record(state: &ApiState, device: &DeviceRecord, lines: &[String]) -> Result<usize, ApiError> {
    let Some(logs) = &state.logs else {
        return Err(ApiError::new(
            "FailedOperation",
            "This hub keeps no device logs ([device-logs] enabled = false).",
        ));
    };
    let id = DeviceId::new(device.product_id.clone(), device.name.clone());
    let lines: Vec<&str> = lines
        .iter()
        .flat_map(|l| l.split("\n\u{c}"))
        .map(|l| l.trim_end_matches(['\r', '\n']))
        .filter(|l| !l.is_empty())
        .collect();
    logs.record_sdk_log(&id, &lines);
    Ok(lines.len())
}

/// `POST /cgi-bin/report-log`.
pub(crate) async fn report_legacy(State(state): State<Arc<ApiState>>, body: Body) -> Response {
    let outcome = async {
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| "the body is too large".to_owned())?;
        if body.len() < HEADER {
            return Err("the body is shorter than its 112-byte header".to_owned());
        }
        let field = |range: std::ops::Range<usize>| {
            String::from_utf8_lossy(&body[range])
                .trim_end_matches('#')
                .to_owned()
        };
        let (product, name) = (field(44..54), field(54..102));
        let device = device(&state, &product, &name)
            .await
            .map_err(|e| e.message)?;
        let key = key_of(&device).ok_or("the device has no key".to_owned())?;
        let expected = hex::encode(mac::<Hmac<sha1::Sha1>>(&key, &body[40..]));
        let given = body[..40].to_ascii_lowercase();
        if !bool::from(expected.as_bytes().ct_eq(&given)) {
            return Err("the signature does not match".to_owned());
        }
        let text = String::from_utf8_lossy(&body[HEADER..]).into_owned();
        record(&state, &device, &[text]).map_err(|e| e.message)
    }
    .await;
    let reply = match outcome {
        Ok(lines) => json!({"Retcode": 0, "Retmsg": "success", "Lines": lines}),
        Err(why) => {
            tracing::info!(reason = %why, "SDK log upload refused");
            json!({"Retcode": -1, "Retmsg": why})
        }
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        reply.to_string(),
    )
        .into_response()
}

/// `POST /device/reportlog`.
pub(crate) async fn report(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = crate::new_request_id();
    match report_signed(&state, &headers, body).await {
        Ok(()) => success(serde_json::Map::new(), &request_id),
        Err(err) => {
            tracing::info!(code = %err.code, request_id, "SDK log upload refused");
            failure(&err, &request_id, StatusCode::OK)
        }
    }
}

async fn report_signed(state: &ApiState, headers: &HeaderMap, body: Body) -> Result<(), ApiError> {
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::invalid("body", "is too large"))?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::missing(name))
    };
    let (algorithm, timestamp, nonce, signature) = (
        header("x-tc-algorithm")?,
        header("x-tc-timestamp")?,
        header("x-tc-nonce")?,
        header("x-tc-signature")?,
    );
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid("body", format!("is not JSON: {e}")))?;
    let text = |key: &str| {
        request[key]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::missing(key))
    };
    let device = device(state, &text("ProductId")?, &text("DeviceName")?).await?;
    crate::register::check_timestamp_for(&timestamp)?;
    let key = key_of(&device)
        .ok_or_else(|| ApiError::new("AuthFailure.SignatureFailure", "The device has no key."))?;
    let hosts = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(crate::register::strip_port)
        .into_iter()
        .chain([TENCENT_GATEWAY]);
    let given = BASE64.decode(signature.trim()).unwrap_or_default();
    let mut verified = false;
    for host in hosts {
        let to_sign = |hash: String| {
            format!("POST\n{host}\n/device/reportlog\n\n{algorithm}\n{timestamp}\n{nonce}\n{hash}")
        };
        let expected = match algorithm.to_ascii_lowercase().as_str() {
            "hmacsha256" => mac::<Hmac<sha2::Sha256>>(
                &key,
                to_sign(hex::encode(sha2::Sha256::digest(&body))).as_bytes(),
            ),
            "hmacsha1" => mac::<Hmac<sha1::Sha1>>(
                &key,
                to_sign(hex::encode(sha1::Sha1::digest(&body))).as_bytes(),
            ),
            other => {
                return Err(ApiError::invalid(
                    "X-TC-Algorithm",
                    format!("must be hmacsha256 or hmacsha1, got {other:?}"),
                ));
            }
        };
        verified |= bool::from(expected.ct_eq(&given));
    }
    if !verified {
        return Err(ApiError::new(
            "AuthFailure.SignatureFailure",
            "The signature does not match the device's key.",
        ));
    }
    crate::register::check_nonce_for(state, device.product_id.as_str(), &nonce)?;
    let lines: Vec<String> = request["Message"]
        .as_array()
        .ok_or_else(|| ApiError::missing("Message"))?
        .iter()
        .filter_map(|l| l.as_str().map(str::to_owned))
        .collect();
    record(state, &device, &lines)?;
    Ok(())
}
