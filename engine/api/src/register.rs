//! Dynamic registration over HTTP (Tencent §8), on the API listener:
//!
//! - `POST /device/register` — JSON `{"ProductId","DeviceName"}`, signed in the headers
//!   `X-TC-Algorithm` (`hmacsha256`, or `hmacsha1`), `X-TC-Timestamp`, `X-TC-Nonce`,
//!   `X-TC-Signature` = base64(HMAC(ProductSecret, "POST\n{host}\n{path}\n\n{algorithm}\n
//!   {timestamp}\n{nonce}\n{hex(hash(body))}")). The host is the `Host` header without its
//!   port, or Tencent's gateway name that the Python SDK always signs. Answer:
//!   `{"Response":{"Len","Payload","RequestId"}}`; errors in the Cloud API envelope, HTTP 200.
//! - `POST /register/dev` — the older SDKs' form: `{"deviceName","nonce","productId",
//!   "timestamp","signature"}`, signature = base64(hex(HMAC-SHA1(ProductSecret,
//!   "deviceName=…&nonce=…&productId=…&timestamp=…"))). Answer `{"code":0,"message":"",
//!   "len","payload"}` or `{"code","message","requestId"}`.
//!
//! `Payload` is the device's credentials, `{"encryptionType":2,"psk":…}` or
//! `{"encryptionType":1,"clientCert":…,"clientKey":…}`, encrypted with AES-128-CBC (key:
//! the first 16 bytes of the product secret, IV: sixteen ASCII `0`) after zero padding
//! that always adds at least one zero byte (the C SDK reads up to it), base64-encoded;
//! `Len` is the plaintext's length. A request more than [`MAX_SKEW_SECS`] away from the
//! hub's clock, or repeating a nonce seen for the product within that window, is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aes::cipher::{BlockEncryptMut as _, KeyIvInit as _, block_padding::NoPadding};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use eddy_core::secret::ExposeSecret as _;
use eddy_core::time::unix_now;
use eddy_registry::{RegisteredCredentials, RegistryError};
use eddy_store::ProductRecord;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use crate::ApiState;
use crate::error::{ApiError, failure, success};

/// Largest registration request body.
const MAX_BODY_BYTES: usize = 4096;
/// How far a request's timestamp may be from the hub's clock (Tencent documents none for
/// this endpoint; its Cloud API allows five minutes).
pub const MAX_SKEW_SECS: i64 = 300;
/// The host Tencent's Python device SDK always signs, whatever it connects to.
const TENCENT_GATEWAY: &str = "ap-guangzhou.gateway.tencentdevices.com";

/// Nonces seen per product within the skew window, for replay refusal.
#[derive(Debug, Default)]
pub struct Nonces(Mutex<HashMap<(String, String), i64>>);

impl Nonces {
    /// Records `nonce` for `product` at `timestamp`; false if it was seen already.
    fn first_use(&self, product: &str, nonce: &str, now: i64) -> bool {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Entries older than the window can no longer be replayed: a replay would be stale.
        if seen.len() > 1024 {
            seen.retain(|_, at| now - *at <= 2 * MAX_SKEW_SECS);
        }
        match seen.entry((product.to_owned(), nonce.to_owned())) {
            std::collections::hash_map::Entry::Occupied(mut at)
                if now - *at.get() > 2 * MAX_SKEW_SECS =>
            {
                at.insert(now);
                true
            }
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(now);
                true
            }
        }
    }
}

/// A refusal, with the legacy endpoint's numeric code beside the Cloud API one.
struct Refusal {
    error: ApiError,
    legacy_code: i64,
}

impl Refusal {
    fn auth(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: ApiError::new(code, message),
            // The one legacy code Tencent is known to send: "Check signature failed".
            legacy_code: 1010,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            error: ApiError::new("InvalidParameterValue", message),
            legacy_code: 1000,
        }
    }
}

impl From<RegistryError> for Refusal {
    fn from(err: RegistryError) -> Self {
        let legacy_code = if err.is_internal() { 1500 } else { 1020 };
        Self {
            error: err.into(),
            legacy_code,
        }
    }
}

/// `POST /device/register`.
pub(crate) async fn register(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = crate::new_request_id();
    match register_signed(&state, &headers, body).await {
        Ok((len, payload)) => {
            let mut fields = Map::new();
            fields.insert("Len".into(), json!(len));
            fields.insert("Payload".into(), json!(payload));
            success(fields, &request_id)
        }
        Err(refusal) => {
            tracing::info!(code = %refusal.error.code, request_id, "device registration refused");
            failure(&refusal.error, &request_id, StatusCode::OK)
        }
    }
}

async fn register_signed(
    state: &ApiState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(usize, String), Refusal> {
    let body = read_body(body).await?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Refusal::bad_request(format!("The header {name} is missing.")))
    };
    let algorithm = header("x-tc-algorithm")?;
    let timestamp = header("x-tc-timestamp")?;
    let nonce = header("x-tc-nonce")?;
    let signature = header("x-tc-signature")?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| Refusal::bad_request(format!("The body is not JSON: {e}")))?;
    let field = |name: &str| {
        request
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Refusal::bad_request(format!("The body needs the string {name}.")))
    };
    let (product_id, device_name) = (field("ProductId")?, field("DeviceName")?);
    let product = state.registry.product(&product_id).await?;
    check_timestamp(&timestamp)?;

    let hosts = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(strip_port)
        .into_iter()
        .chain([TENCENT_GATEWAY]);
    let secret = product.secret.expose_secret().as_bytes();
    let given = BASE64.decode(signature.trim()).map_err(|_| {
        Refusal::auth(
            "AuthFailure.SignatureFailure",
            "X-TC-Signature is not base64.",
        )
    })?;
    let mut verified = false;
    for host in hosts {
        let expected = match algorithm.to_ascii_lowercase().as_str() {
            "hmacsha256" => {
                let text = string_to_sign(
                    host,
                    &algorithm,
                    &timestamp,
                    &nonce,
                    &hex::encode(sha2::Sha256::digest(&body)),
                );
                mac::<Hmac<sha2::Sha256>>(secret, &text)
            }
            "hmacsha1" => {
                let text = string_to_sign(
                    host,
                    &algorithm,
                    &timestamp,
                    &nonce,
                    &hex::encode(sha1::Sha1::digest(&body)),
                );
                mac::<Hmac<sha1::Sha1>>(secret, &text)
            }
            other => {
                return Err(Refusal::bad_request(format!(
                    "X-TC-Algorithm must be hmacsha256 or hmacsha1, got {other:?}."
                )));
            }
        };
        verified |= bool::from(expected.ct_eq(&given));
    }
    if !verified {
        return Err(Refusal::auth(
            "AuthFailure.SignatureFailure",
            "The signature does not match the product secret.",
        ));
    }
    check_nonce(state, &product, &nonce)?;
    answer(state, &product, &device_name).await
}

/// `POST /register/dev`: the older device SDKs' registration.
pub(crate) async fn register_legacy(State(state): State<Arc<ApiState>>, body: Body) -> Response {
    let request_id = crate::new_request_id();
    let reply = match register_legacy_signed(&state, body).await {
        Ok((len, payload)) => json!({"code": 0, "message": "", "len": len, "payload": payload}),
        Err(refusal) => {
            tracing::info!(code = %refusal.error.code, request_id, "device registration refused");
            let message = if refusal.legacy_code == 1010 {
                format!("Check signature failed: {}", refusal.error.message)
            } else {
                refusal.error.message
            };
            json!({"code": refusal.legacy_code, "message": message, "requestId": request_id})
        }
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        reply.to_string(),
    )
        .into_response()
}

async fn register_legacy_signed(state: &ApiState, body: Body) -> Result<(usize, String), Refusal> {
    // The C SDK labels its JSON body as a form: the content type is not looked at.
    let body = read_body(body).await?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| Refusal::bad_request(format!("The body is not JSON: {e}")))?;
    // Numbers in the SDKs; strings accepted too.
    let field = |name: &str| match request.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(Refusal::bad_request(format!("The body needs {name}."))),
    };
    let device_name = field("deviceName")?;
    let nonce = field("nonce")?;
    let product_id = field("productId")?;
    let timestamp = field("timestamp")?;
    let signature = field("signature")?;
    let product = state.registry.product(&product_id).await?;
    check_timestamp(&timestamp)?;
    let text = format!(
        "deviceName={device_name}&nonce={nonce}&productId={product_id}&timestamp={timestamp}"
    );
    let expected = mac::<Hmac<sha1::Sha1>>(product.secret.expose_secret().as_bytes(), &text);
    let expected = BASE64.encode(hex::encode(expected));
    if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
        return Err(Refusal::auth(
            "AuthFailure.SignatureFailure",
            "the signature does not match the product secret",
        ));
    }
    check_nonce(state, &product, &nonce)?;
    answer(state, &product, &device_name).await
}

async fn read_body(body: Body) -> Result<Bytes, Refusal> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Refusal::bad_request(format!("The body exceeds {MAX_BODY_BYTES} bytes.")))
}

/// The timestamp is within the window of the hub's clock.
fn check_timestamp(timestamp: &str) -> Result<(), Refusal> {
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Refusal::bad_request("The timestamp must be Unix seconds."))?;
    let now = unix_now();
    if (now - at).abs() > MAX_SKEW_SECS {
        return Err(Refusal::auth(
            "AuthFailure.SignatureExpire",
            format!(
                "The timestamp {at} is more than {MAX_SKEW_SECS} s from the hub's clock ({now})."
            ),
        ));
    }
    Ok(())
}

/// The nonce is new for the product (checked after the signature, so only holders of the
/// product secret can fill the table).
fn check_nonce(state: &ApiState, product: &ProductRecord, nonce: &str) -> Result<(), Refusal> {
    let now = unix_now();
    if nonce.is_empty() {
        return Err(Refusal::bad_request("The nonce must not be empty."));
    }
    if !state.nonces.first_use(product.id.as_str(), nonce, now) {
        return Err(Refusal::auth(
            "AuthFailure.NonceReused",
            format!("The nonce {nonce} was used already; every request needs a new one."),
        ));
    }
    Ok(())
}

pub(crate) fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        // Not the colons of a bare IPv6 address.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    }
}

fn string_to_sign(
    host: &str,
    algorithm: &str,
    timestamp: &str,
    nonce: &str,
    body_hash: &str,
) -> String {
    format!("POST\n{host}\n/device/register\n\n{algorithm}\n{timestamp}\n{nonce}\n{body_hash}")
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], text: &str) -> Vec<u8> {
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Registers the device and encrypts its credentials: (plaintext length, base64 payload).
async fn answer(
    state: &ApiState,
    product: &ProductRecord,
    device_name: &str,
) -> Result<(usize, String), Refusal> {
    let credentials = state.registry.register_device(product, device_name).await?;
    let plaintext = match &credentials {
        RegisteredCredentials::Psk(psk) => {
            json!({"encryptionType": 2, "psk": psk.expose_secret()})
        }
        RegisteredCredentials::Certificate { cert_pem, key_pem } => json!({
            "encryptionType": 1,
            "clientCert": cert_pem,
            "clientKey": key_pem.expose_secret(),
        }),
    }
    .to_string();
    let payload = encrypt(product.secret.expose_secret(), plaintext.as_bytes()).ok_or_else(|| {
        tracing::error!(product = %product.id, "the product secret is shorter than an AES-128 key");
        Refusal::from(RegistryError::Crypto(
            "the product secret is too short to encrypt the answer".into(),
        ))
    })?;
    Ok((plaintext.len(), payload))
}

/// AES-128-CBC under the first 16 bytes of `secret` with IV "0000000000000000", after
/// zero padding that always adds at least one zero byte; base64.
pub fn encrypt(secret: &str, plaintext: &[u8]) -> Option<String> {
    let key = secret.as_bytes().get(..16)?;
    let mut buffer = plaintext.to_vec();
    buffer.resize((plaintext.len() / 16 + 1) * 16, 0);
    let cipher = cbc::Encryptor::<aes::Aes128>::new_from_slices(key, b"0000000000000000").ok()?;
    let encrypted = cipher.encrypt_padded_vec_mut::<NoPadding>(&buffer);
    Some(BASE64.encode(encrypted))
}

/// [`check_timestamp`] for other signed device endpoints (SDK log upload).
pub(crate) fn check_timestamp_for(timestamp: &str) -> Result<(), ApiError> {
    check_timestamp(timestamp).map_err(|r| r.error)
}

/// [`check_nonce`] for other signed device endpoints; nonces are per product and shared
/// with registration (a nonce is never reused by the same product's devices).
pub(crate) fn check_nonce_for(
    state: &ApiState,
    product: &str,
    nonce: &str,
) -> Result<(), ApiError> {
    if nonce.is_empty() {
        return Err(ApiError::invalid("X-TC-Nonce", "must not be empty"));
    }
    if state.nonces.first_use(product, nonce, unix_now()) {
        Ok(())
    } else {
        Err(ApiError::new(
            "AuthFailure.NonceReused",
            format!("The nonce {nonce} was used already; every request needs a new one."),
        ))
    }
}

#[cfg(test)]
mod tests {
    use aes::cipher::{BlockDecryptMut as _, KeyIvInit as _, block_padding::NoPadding};

    use super::*;

    #[test]
    fn decrypts_tencents_documented_answer_shape() {
        // Round trip with an independent decryption, zero padding stripped.
        let secret = "hzvf5LF9S0isvBhDSauWMaIk";
        let plain = br#"{"encryptionType":2,"psk":"lDZ6Uqt+I9E0wW7rvDUs7Q=="}"#;
        let payload = BASE64.decode(encrypt(secret, plain).unwrap()).unwrap();
        assert_eq!(payload.len() % 16, 0);
        assert!(
            payload.len() > plain.len(),
            "at least one zero byte is added"
        );
        let decrypted = cbc::Decryptor::<aes::Aes128>::new_from_slices(
            &secret.as_bytes()[..16],
            b"0000000000000000",
        )
        .unwrap()
        .decrypt_padded_vec_mut::<NoPadding>(&payload)
        .unwrap();
        assert_eq!(&decrypted[..plain.len()], plain);
        assert!(decrypted[plain.len()..].iter().all(|b| *b == 0));
        // A plaintext of whole blocks still gets a block of zeros.
        let sixteen = BASE64
            .decode(encrypt(secret, &[b'x'; 16]).unwrap())
            .unwrap();
        assert_eq!(sixteen.len(), 32);
        assert_eq!(encrypt("short", b"x"), None);
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(strip_port("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(strip_port("hub.example"), "hub.example");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
    }

    #[test]
    fn nonces_are_single_use_within_the_window() {
        let nonces = Nonces::default();
        assert!(nonces.first_use("P", "1", 1000));
        assert!(!nonces.first_use("P", "1", 1001));
        assert!(nonces.first_use("Q", "1", 1001), "per product");
        assert!(
            nonces.first_use("P", "1", 1000 + 2 * MAX_SKEW_SECS + 1),
            "after the window"
        );
    }
}
