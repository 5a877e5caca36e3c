//! Verifying TC3-HMAC-SHA256 signatures on incoming requests.
//!
//! The server rebuilds the canonical request from the headers the client says it signed
//! (Tencent's SDKs sign `content-type;host`; others may sign more) and the Host header as
//! received, so the API answers under any host name or port. The credential scope's date
//! must be the UTC date of `X-TC-Timestamp`, which must be within ±5 minutes of now.

use axum::http::HeaderMap;
use eddy_core::secret::ExposeSecret;
use eddy_core::time::unix_now;
use eddy_store::Store;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::tc3;

/// Largest accepted difference between `X-TC-Timestamp` and the hub's clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub secret_id: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn invalid_auth(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "AuthFailure.InvalidAuthorization",
        format!("The Authorization header is invalid: {reason}"),
    )
}

/// Parses `X-TC-Timestamp`.
pub fn request_timestamp(headers: &HeaderMap) -> Result<i64, ApiError> {
    let raw = header(headers, "x-tc-timestamp").ok_or_else(|| ApiError::missing("Timestamp"))?;
    raw.trim().parse().map_err(|_| {
        ApiError::new(
            "InvalidParameter",
            format!("X-TC-Timestamp must be Unix seconds, got {raw:?}"),
        )
    })
}

/// Checks the request's signature; returns who signed it.
pub async fn verify(
    store: &dyn Store,
    method: &str,
    canonical_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    timestamp: i64,
) -> Result<Caller, ApiError> {
    let raw =
        header(headers, "authorization").ok_or_else(|| invalid_auth("the header is missing"))?;
    let auth = tc3::parse_authorization(raw).map_err(invalid_auth)?;

    for required in ["content-type", "host"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(invalid_auth(format!(
                "SignedHeaders must include {required}"
            )));
        }
    }
    let mut signed = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let value = header(headers, name)
            .ok_or_else(|| invalid_auth(format!("signed header {name} is not in the request")))?;
        signed.push((name.as_str(), value));
    }

    let now = unix_now();
    if (now - timestamp).abs() > MAX_CLOCK_SKEW_SECS {
        return Err(ApiError::new(
            "AuthFailure.SignatureExpire",
            format!(
                "The signature has expired: X-TC-Timestamp {timestamp} is more than \
                 {MAX_CLOCK_SKEW_SECS} s from the server time {now}."
            ),
        ));
    }
    if tc3::date_of(timestamp).as_deref() != Some(auth.date.as_str()) {
        return Err(invalid_auth(format!(
            "the credential date {} is not the UTC date of X-TC-Timestamp {timestamp}",
            auth.date
        )));
    }

    let key = store
        .api_key(&auth.secret_id)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "API key lookup failed");
            ApiError::internal()
        })?
        .ok_or_else(|| {
            ApiError::new(
                "AuthFailure.SecretIdNotFound",
                "The SecretId is not found; check that it is correct and active.",
            )
        })?;

    let payload_hash = if header(headers, "x-tc-content-sha256") == Some(tc3::UNSIGNED_PAYLOAD) {
        tc3::sha256_hex(tc3::UNSIGNED_PAYLOAD.as_bytes())
    } else {
        tc3::sha256_hex(body)
    };
    let canonical = tc3::canonical_request(method, canonical_query, &signed, &payload_hash);
    let to_sign = tc3::string_to_sign(timestamp, &auth.date, &auth.service, &canonical);
    let expected = tc3::signature(
        key.secret_key.expose_secret(),
        &auth.date,
        &auth.service,
        &to_sign,
    );
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(Caller {
            secret_id: auth.secret_id,
        })
    } else {
        Err(ApiError::new(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated: the signature does not match. \
             Check the SecretKey and the signing steps.",
        ))
    }
}
