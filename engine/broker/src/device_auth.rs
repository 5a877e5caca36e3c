//! Tencent IoT Hub key authentication of an MQTT CONNECT (TENCENT-PROTOCOL.md §1).
//!
//! ```text
//! ClientId = ${ProductId}${DeviceName}
//! Username = ${ClientId};${sdkappid};${connid};${expiry}
//! Password = lowerhex(HMAC(base64decode(DevicePsk), Username)) + ";hmacsha1" | ";hmacsha256"
//! ```
//!
//! Every variant Tencent's SDKs send is accepted: any sdkappid (`12010126`, `21010406`, …),
//! expiry in seconds, in milliseconds (the Python SDK) or `LONG_MAX` (the C SDK), SHA-1
//! (C, Python) and SHA-256 (Java). Signatures are compared in constant time.
//!
//! Only an expiry in seconds is enforced. The millisecond value of Tencent's Python device
//! SDK is the time it signed the user name (once, when it was created), not an expiry: it
//! reconnects with it for as long as it runs, and Tencent accepts that, so Eddy does too.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use eddy_core::{DeviceId, IdError};
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// Expiry values above this are milliseconds (10^11 s is the year 5138).
const MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// Why a CONNECT was refused, by the CONNACK it gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The ClientId is not `${ProductId}${DeviceName}` (CONNACK 2 / 0x85).
    #[error("client identifier rejected: {0}")]
    BadClientId(String),
    /// Username or password malformed, wrong or expired (CONNACK 4 / 0x86).
    #[error("bad user name or password: {0}")]
    BadCredentials(&'static str),
    /// The device is unknown or disabled (CONNACK 5 / 0x87).
    #[error("not authorized: {0}")]
    NotAuthorized(&'static str),
}

impl From<IdError> for AuthError {
    fn from(err: IdError) -> Self {
        Self::BadClientId(err.to_string())
    }
}

/// The signature algorithm named after the password's `;`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMethod {
    HmacSha1,
    HmacSha256,
}

/// A parsed Tencent username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username<'a> {
    pub client_id: &'a str,
    pub sdkappid: &'a str,
    pub connid: &'a str,
    /// Unix seconds after which the credentials are void; `None` when the device sent a
    /// value too large to be a date (`LONG_MAX`).
    pub expires_at: Option<i64>,
}

impl<'a> Username<'a> {
    pub fn parse(username: &'a str) -> Result<Self, AuthError> {
        let mut parts = username.split(';');
        let (Some(client_id), Some(sdkappid), Some(connid), Some(expiry), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(AuthError::BadCredentials(
                "the user name must be ClientId;sdkappid;connid;expiry",
            ));
        };
        let expiry: i64 = expiry
            .trim()
            .parse()
            .map_err(|_| AuthError::BadCredentials("the expiry is not an integer"))?;
        Ok(Self {
            client_id,
            sdkappid,
            connid,
            // Milliseconds are the Python SDK's signing time; LONG_MAX never expires.
            expires_at: (expiry <= MILLIS_THRESHOLD).then_some(expiry),
        })
    }
}

/// Splits `hexsig;hmacsha1` / `hexsig;hmacsha256`.
pub fn parse_password(password: &[u8]) -> Result<(&[u8], SignMethod), AuthError> {
    let bad = AuthError::BadCredentials("the password must be hexsignature;hmacsha1|hmacsha256");
    let split = password
        .iter()
        .rposition(|b| *b == b';')
        .ok_or(bad.clone())?;
    let (signature, method) = (&password[..split], &password[split + 1..]);
    let method = if method.eq_ignore_ascii_case(b"hmacsha1") {
        SignMethod::HmacSha1
    } else if method.eq_ignore_ascii_case(b"hmacsha256") {
        SignMethod::HmacSha256
    } else {
        return Err(bad);
    };
    Ok((signature, method))
}

/// The signature a device with `psk` computes over `username`, lower-case hex.
pub fn sign(psk: &[u8], username: &str, method: SignMethod) -> String {
    fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length.
        let Ok(mut m) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
            unreachable!("HMAC accepts any key length")
        };
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
    let raw = match method {
        SignMethod::HmacSha1 => mac::<Hmac<sha1::Sha1>>(psk, username.as_bytes()),
        SignMethod::HmacSha256 => mac::<Hmac<sha2::Sha256>>(psk, username.as_bytes()),
    };
    hex::encode(raw)
}

/// Checks a key device's CONNECT: ClientId form, username, expiry and signature.
///
/// `psk_base64` is the device's stored `DevicePsk`; `now` is Unix seconds. On success
/// returns the device named by the ClientId (the caller has already looked it up by it).
pub fn verify_key_device(
    client_id: &str,
    username: &str,
    password: &[u8],
    psk_base64: &str,
    now: i64,
) -> Result<DeviceId, AuthError> {
    let device = DeviceId::from_client_id(client_id)?;
    let parsed = Username::parse(username)?;
    if parsed.client_id != client_id {
        return Err(AuthError::BadCredentials(
            "the user name does not start with the ClientId",
        ));
    }
    if parsed.expires_at.is_some_and(|at| at < now) {
        return Err(AuthError::BadCredentials("the credentials have expired"));
    }
    let (signature, method) = parse_password(password)?;
    let psk = BASE64
        .decode(psk_base64)
        .map_err(|_| AuthError::NotAuthorized("the device's stored PSK is not base64"))?;
    let expected = sign(&psk, username, method);
    let given = signature.to_ascii_lowercase();
    if bool::from(expected.as_bytes().ct_eq(&given)) {
        Ok(device)
    } else {
        Err(AuthError::BadCredentials("the signature does not match"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PSK: &str = "MDEyMzQ1Njc4OWFiY2RlZg=="; // "0123456789abcdef"
    const NOW: i64 = 1_800_000_000;

    fn password(username: &str, method: SignMethod, suffix: &str) -> Vec<u8> {
        let psk = BASE64.decode(PSK).unwrap();
        format!("{};{suffix}", sign(&psk, username, method)).into_bytes()
    }

    #[test]
    fn hmac_sha1_matches_an_independent_computation() {
        // HMAC-SHA1(key="key", "The quick brown fox jumps over the lazy dog"), RFC 2104 test
        // value widely published.
        assert_eq!(
            sign(
                b"key",
                "The quick brown fox jumps over the lazy dog",
                SignMethod::HmacSha1
            ),
            "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
        );
        assert_eq!(
            sign(
                b"key",
                "The quick brown fox jumps over the lazy dog",
                SignMethod::HmacSha256
            ),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn every_sdk_variant_is_accepted() {
        for (sdkappid, expiry) in [
            ("12010126", (NOW + 3600).to_string()), // docs, Java: seconds
            ("21010406", ((NOW + 3600) * 1000).to_string()), // Python: milliseconds
            ("21010406", i64::MAX.to_string()),     // C: LONG_MAX
            ("21010406", "2147483647".to_string()), // 32-bit LONG_MAX
        ] {
            let username = format!("ABCDE12345dev1;{sdkappid};a1B2c;{expiry}");
            for (method, suffix) in [
                (SignMethod::HmacSha1, "hmacsha1"),
                (SignMethod::HmacSha256, "hmacsha256"),
                (SignMethod::HmacSha256, "HMACSHA256"),
            ] {
                let pw = password(&username, method, suffix);
                let dev = verify_key_device("ABCDE12345dev1", &username, &pw, PSK, NOW)
                    .unwrap_or_else(|e| panic!("{username} {suffix}: {e}"));
                assert_eq!(dev.client_id(), "ABCDE12345dev1");
            }
        }
    }

    #[test]
    fn wrong_or_expired_credentials_are_refused() {
        let username = format!("ABCDE12345dev1;12010126;a1B2c;{}", NOW + 60);
        let good = password(&username, SignMethod::HmacSha1, "hmacsha1");
        let check = |client_id: &str, username: &str, pw: &[u8], psk: &str| {
            verify_key_device(client_id, username, pw, psk, NOW)
        };

        let other_psk = BASE64.encode(b"another key 16b!");
        assert_eq!(
            check("ABCDE12345dev1", &username, &good, &other_psk),
            Err(AuthError::BadCredentials("the signature does not match"))
        );
        let expired = format!("ABCDE12345dev1;12010126;a1B2c;{}", NOW - 1);
        let pw = password(&expired, SignMethod::HmacSha1, "hmacsha1");
        assert_eq!(
            check("ABCDE12345dev1", &expired, &pw, PSK),
            Err(AuthError::BadCredentials("the credentials have expired"))
        );
        // The Python SDK's signing time in milliseconds, long past: it still connects (it
        // reconnects with the user name it signed when it started).
        let signed_ms = format!("ABCDE12345dev1;21010406;a1B2c;{}", (NOW - 86_400) * 1000);
        let pw = password(&signed_ms, SignMethod::HmacSha1, "hmacsha1");
        assert!(check("ABCDE12345dev1", &signed_ms, &pw, PSK).is_ok());
        // Someone else's ClientId in the username.
        let stolen = format!("ABCDE12345dev2;12010126;a1B2c;{}", NOW + 60);
        let pw = password(&stolen, SignMethod::HmacSha1, "hmacsha1");
        assert!(matches!(
            check("ABCDE12345dev1", &stolen, &pw, PSK),
            Err(AuthError::BadCredentials(_))
        ));
        // Malformed pieces.
        assert!(matches!(
            check("short", &username, &good, PSK),
            Err(AuthError::BadClientId(_))
        ));
        for bad_user in [
            "",
            "a;b;c",
            "ABCDE12345dev1;1;2;3;4",
            "ABCDE12345dev1;1;2;soon",
        ] {
            assert!(matches!(
                check("ABCDE12345dev1", bad_user, &good, PSK),
                Err(AuthError::BadCredentials(_))
            ));
        }
        for bad_pw in [&b"nosemicolon"[..], b"abc;md5", b""] {
            assert!(matches!(
                check("ABCDE12345dev1", &username, bad_pw, PSK),
                Err(AuthError::BadCredentials(_))
            ));
        }
        // A tampered signature of the right length.
        let mut tampered = good.clone();
        tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
        assert!(check("ABCDE12345dev1", &username, &tampered, PSK).is_err());
        // Upper-case hex is the same signature.
        let upper = String::from_utf8(good).unwrap().to_uppercase();
        let upper = upper.replace(";HMACSHA1", ";hmacsha1");
        assert!(check("ABCDE12345dev1", &username, upper.as_bytes(), PSK).is_ok());
    }
}
