//! Tencent Cloud API 3.0 request signing, TC3-HMAC-SHA256 (TENCENT-PROTOCOL.md §10).
//!
//! The same functions sign requests (the `eddy` CLI, tests) and verify them (the server),
//! so a unit test pins them to the signing example Tencent publishes in its API docs.
//!
//! ```text
//! CanonicalRequest = METHOD \n / \n QUERY \n lower(h):trim(v) \n … \n \n signed;headers \n hex(sha256(body))
//! StringToSign     = TC3-HMAC-SHA256 \n TIMESTAMP \n DATE/SERVICE/tc3_request \n hex(sha256(CanonicalRequest))
//! kDate = HMAC("TC3"+SecretKey, DATE); kService = HMAC(kDate, SERVICE);
//! kSigning = HMAC(kService, "tc3_request"); Signature = hex(HMAC(kSigning, StringToSign))
//! ```

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The service name in the credential scope for IoT Hub.
pub const SERVICE: &str = "iotcloud";
/// The API version Eddy implements.
pub const VERSION: &str = "2021-04-08";
/// `X-TC-Content-SHA256` value that exempts the body from the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        unreachable!("HMAC-SHA256 takes keys of any length")
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The UTC date (`YYYY-MM-DD`) of a Unix timestamp, as used in the credential scope.
/// `None` for timestamps outside what a calendar can show.
pub fn date_of(timestamp: i64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp(timestamp).ok()?;
    let d = at.date();
    Some(format!(
        "{:04}-{:02}-{:02}",
        d.year(),
        u8::from(d.month()),
        d.day()
    ))
}

/// Builds the canonical request. `headers` are the signed headers, in the order of
/// `signed_headers`, with lower-case names; values are trimmed here.
pub fn canonical_request(
    method: &str,
    canonical_query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
) -> String {
    let mut canonical_headers = String::new();
    for (name, value) in headers {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(value.trim());
        canonical_headers.push('\n');
    }
    let signed: Vec<&str> = headers.iter().map(|(name, _)| *name).collect();
    format!(
        "{method}\n/\n{canonical_query}\n{canonical_headers}\n{}\n{payload_hash}",
        signed.join(";")
    )
}

pub fn string_to_sign(
    timestamp: i64,
    date: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The hex signature of `string_to_sign` under `secret_key`.
pub fn signature(secret_key: &str, date: &str, service: &str, string_to_sign: &str) -> String {
    let k_date = hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac(&k_date, service.as_bytes());
    let k_signing = hmac(&k_service, b"tc3_request");
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

/// What a client needs to sign one JSON POST.
#[derive(Debug)]
pub struct SignRequest<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    pub service: &'a str,
    /// The `Host` header exactly as sent (with the port, if any).
    pub host: &'a str,
    pub content_type: &'a str,
    pub payload: &'a [u8],
    pub timestamp: i64,
}

/// The `Authorization` header for a POST signed over `content-type;host`, as Tencent's
/// SDKs send it. `None` when the timestamp has no calendar date.
pub fn authorization(req: &SignRequest<'_>) -> Option<String> {
    let date = date_of(req.timestamp)?;
    let canonical = canonical_request(
        "POST",
        "",
        &[("content-type", req.content_type), ("host", req.host)],
        &sha256_hex(req.payload),
    );
    let to_sign = string_to_sign(req.timestamp, &date, req.service, &canonical);
    let sig = signature(req.secret_key, &date, req.service, &to_sign);
    Some(format!(
        "{ALGORITHM} Credential={}/{date}/{}/tc3_request, SignedHeaders=content-type;host, Signature={sig}",
        req.secret_id, req.service
    ))
}

/// The parts of an `Authorization: TC3-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub secret_id: String,
    pub date: String,
    pub service: String,
    /// Lower-case header names, in the order given.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses an `Authorization` header; the error says what is malformed.
pub fn parse_authorization(value: &str) -> Result<Authorization, String> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| format!("the algorithm must be {ALGORITHM}"))?
        .trim_start();
    let (mut credential, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            sig = Some(v);
        } else if !part.is_empty() {
            return Err(format!("unexpected part {part:?}"));
        }
    }
    let credential = credential.ok_or("Credential= is missing")?;
    let signed = signed.ok_or("SignedHeaders= is missing")?;
    let sig = sig.ok_or("Signature= is missing")?;
    let mut scope = credential.split('/');
    let (Some(secret_id), Some(date), Some(service), Some("tc3_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err("Credential must be SecretId/YYYY-MM-DD/service/tc3_request".into());
    };
    if secret_id.is_empty() || service.is_empty() {
        return Err("Credential has an empty SecretId or service".into());
    }
    let signed_headers: Vec<String> = signed
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err("SignedHeaders has an empty name".into());
    }
    Ok(Authorization {
        secret_id: secret_id.to_owned(),
        date: date.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature: sig.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tencent's published example (API 3.0 docs, "Signature v3": CVM DescribeInstances).
    /// The docs mask the keys with asterisks and compute the signature with them as shown.
    const DOC_SECRET_ID: &str = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******";
    const DOC_SECRET_KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3*******";
    const DOC_PAYLOAD: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
    const DOC_TIMESTAMP: i64 = 1_551_113_065;

    #[test]
    fn matches_tencents_published_signing_example() {
        let payload_hash = sha256_hex(DOC_PAYLOAD.as_bytes());
        assert_eq!(
            payload_hash,
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let canonical = canonical_request(
            "POST",
            "",
            &[
                ("content-type", "application/json; charset=utf-8"),
                ("host", "cvm.tencentcloudapi.com"),
            ],
            &payload_hash,
        );
        assert_eq!(
            canonical,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let date = date_of(DOC_TIMESTAMP).unwrap();
        assert_eq!(date, "2019-02-25");
        let to_sign = string_to_sign(DOC_TIMESTAMP, &date, "cvm", &canonical);
        assert_eq!(
            to_sign,
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(
            signature(DOC_SECRET_KEY, &date, "cvm", &to_sign),
            "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
        );
        let header = authorization(&SignRequest {
            secret_id: DOC_SECRET_ID,
            secret_key: DOC_SECRET_KEY,
            service: "cvm",
            host: "cvm.tencentcloudapi.com",
            content_type: "application/json; charset=utf-8",
            payload: DOC_PAYLOAD.as_bytes(),
            timestamp: DOC_TIMESTAMP,
        })
        .unwrap();
        assert_eq!(
            header,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
        );
        let parsed = parse_authorization(&header).unwrap();
        assert_eq!(parsed.secret_id, DOC_SECRET_ID);
        assert_eq!(parsed.date, "2019-02-25");
        assert_eq!(parsed.service, "cvm");
        assert_eq!(parsed.signed_headers, ["content-type", "host"]);
    }

    #[test]
    fn malformed_authorization_is_explained() {
        assert!(parse_authorization("Basic abc").is_err());
        assert!(parse_authorization("TC3-HMAC-SHA256 Credential=a/b/c/tc3_request").is_err());
        assert!(
            parse_authorization(
                "TC3-HMAC-SHA256 Credential=a/2020-01-01/iotcloud, SignedHeaders=host, Signature=x"
            )
            .is_err()
        );
        assert!(date_of(i64::MAX).is_none());
    }
}
