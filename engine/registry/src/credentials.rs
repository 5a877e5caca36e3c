//! Generating and checking credentials: device PSKs, product secrets, API keys, and the
//! X.509 material of certificate products (a CA per product, a certificate per device).
//!
//! Keys are ECDSA P-256 (rcgen with ring cannot generate RSA keys). Tencent's own device
//! certificates are RSA, but every TLS stack its SDKs use (mbedTLS, OpenSSL, Java) accepts
//! P-256.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use eddy_core::{DeviceId, ProductId, SecretString, secret::secret};
use rand::Rng;
use rand::distr::Alphanumeric;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::{RegistryError, Result};

/// Bytes in a generated device PSK (Tencent's `DevicePsk` decodes to 16 bytes).
const PSK_BYTES: usize = 16;
/// Longest `DefinedPsk`/`Psk` accepted, in base64 characters.
const MAX_PSK_BASE64: usize = 256;

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A fresh random device PSK, base64 as the API returns it.
pub fn generate_device_psk() -> SecretString {
    let mut bytes = [0u8; PSK_BYTES];
    rand::rng().fill(&mut bytes);
    secret(BASE64.encode(bytes))
}

/// Checks a caller-chosen PSK (`DefinedPsk`, `Psk`): it must be base64 of 1+ bytes.
/// Returns the decoded key.
pub fn decode_psk(field: &str, psk_base64: &str) -> Result<Vec<u8>> {
    if psk_base64.len() > MAX_PSK_BASE64 {
        return Err(RegistryError::invalid(
            field,
            format!("must be at most {MAX_PSK_BASE64} base64 characters"),
        ));
    }
    match BASE64.decode(psk_base64) {
        Ok(bytes) if !bytes.is_empty() => Ok(bytes),
        Ok(_) => Err(RegistryError::invalid(field, "must not be empty")),
        Err(err) => Err(RegistryError::invalid(
            field,
            format!("must be base64 (standard alphabet, padded): {err}"),
        )),
    }
}

/// A product secret for dynamic registration: 24 alphanumerics, like Tencent's.
pub fn generate_product_secret() -> SecretString {
    secret(random_alphanumeric(24))
}

/// An API key pair in Tencent's shape (`AKID…` SecretId, 32-character SecretKey).
#[derive(Debug)]
pub struct GeneratedApiKey {
    pub secret_id: String,
    pub secret_key: SecretString,
}

pub fn generate_api_key() -> GeneratedApiKey {
    GeneratedApiKey {
        secret_id: format!("AKID{}", random_alphanumeric(32)),
        secret_key: secret(random_alphanumeric(32)),
    }
}

fn crypto(err: rcgen::Error) -> RegistryError {
    RegistryError::Crypto(err.to_string())
}

/// A product CA: certificate PEM and private key PEM.
pub(crate) struct CaMaterial {
    pub cert_pem: String,
    pub key_pem: SecretString,
}

/// Generates the CA that signs a certificate product's device certificates.
pub(crate) fn generate_product_ca(product: &ProductId) -> Result<CaMaterial> {
    let key = KeyPair::generate().map_err(crypto)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(crypto)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Eddy IoT hub");
    dn.push(DnType::CommonName, format!("Eddy product CA {product}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365 * 30);
    let cert = params.self_signed(&key).map_err(crypto)?;
    Ok(CaMaterial {
        cert_pem: cert.pem(),
        key_pem: secret(key.serialize_pem()),
    })
}

/// A device certificate and its private key (PEM). The key is returned to the caller once
/// and never stored.
pub(crate) struct DeviceCertMaterial {
    pub cert_pem: String,
    pub key_pem: SecretString,
}

/// Issues a client certificate for `device`, signed by its product's CA. The subject's
/// CommonName is the device's ClientId (`${ProductId}${DeviceName}`).
pub(crate) fn issue_device_cert(
    device: &DeviceId,
    ca_cert_pem: &str,
    ca_key_pem: &str,
) -> Result<DeviceCertMaterial> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(crypto)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).map_err(crypto)?;
    let key = KeyPair::generate().map_err(crypto)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(crypto)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Eddy IoT hub");
    dn.push(DnType::OrganizationalUnitName, device.product_id.as_str());
    dn.push(DnType::CommonName, device.client_id());
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365 * 10);
    let cert = params.signed_by(&key, &issuer).map_err(crypto)?;
    Ok(DeviceCertMaterial {
        cert_pem: cert.pem(),
        key_pem: secret(key.serialize_pem()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::DeviceName;
    use eddy_core::secret::ExposeSecret;

    #[test]
    fn psks_are_16_random_bytes_in_base64() {
        let a = generate_device_psk();
        let b = generate_device_psk();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(
            decode_psk("DevicePsk", a.expose_secret()).unwrap().len(),
            16
        );
    }

    #[test]
    fn defined_psk_must_be_base64() {
        assert!(decode_psk("DefinedPsk", "bm90IGEgcmVhbCBrZXk=").is_ok());
        let err = decode_psk("DefinedPsk", "not base64!").unwrap_err();
        assert!(
            err.to_string().starts_with("DefinedPsk: must be base64"),
            "{err}"
        );
        assert!(decode_psk("DefinedPsk", "").is_err());
        assert!(decode_psk("DefinedPsk", &"A".repeat(300)).is_err());
    }

    #[test]
    fn device_certificate_chains_to_product_ca() {
        use x509_parser::pem::parse_x509_pem;
        let pid = ProductId::parse("ABCDE12345").unwrap();
        let ca = generate_product_ca(&pid).unwrap();
        let dev = DeviceId::new(pid, DeviceName::parse("d1").unwrap());
        let issued = issue_device_cert(&dev, &ca.cert_pem, ca.key_pem.expose_secret()).unwrap();

        let (_, ca_pem) = parse_x509_pem(ca.cert_pem.as_bytes()).unwrap();
        let ca_x509 = ca_pem.parse_x509().unwrap();
        let (_, dev_pem) = parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
        let dev_x509 = dev_pem.parse_x509().unwrap();
        assert_eq!(dev_x509.issuer(), ca_x509.subject());
        dev_x509
            .verify_signature(Some(ca_x509.public_key()))
            .expect("device cert is signed by the product CA");
        let cn = dev_x509.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "ABCDE12345d1");
        assert!(issued.key_pem.expose_secret().contains("PRIVATE KEY"));
    }
}
