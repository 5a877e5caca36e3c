//! Certificate devices (TENCENT-PROTOCOL.md §1 (c)): the TLS client certificate is the
//! device's credential, the password is not checked.
//!
//! The certificate must chain to the device's product CA (valid now, client-auth usage),
//! and name the device: either it is the very certificate the registry issued to the
//! device, or its subject CommonName is the ClientId `${ProductId}${DeviceName}` (as the
//! registry writes it). A disabled device is refused before this (revocation).

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, UnixTime};

use crate::DeviceCertificate;

/// Why a client certificate does not admit the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CertRefusal {
    #[error("the product's CA certificate is unreadable")]
    BadCa,
    #[error("the client certificate does not chain to the product's CA: {0}")]
    NotSigned(&'static str),
    #[error("the client certificate names another device")]
    OtherDevice,
}

/// Checks `chain` (end entity first, as presented) for the device `client_id`.
pub(crate) fn verify(
    client_id: &str,
    chain: &[CertificateDer<'static>],
    registered: &DeviceCertificate,
    now: UnixTime,
) -> Result<(), CertRefusal> {
    let Some((end_entity, intermediates)) = chain.split_first() else {
        return Err(CertRefusal::NotSigned("no certificate"));
    };
    let ca = CertificateDer::from_pem_slice(registered.ca_pem.as_bytes())
        .map_err(|_| CertRefusal::BadCa)?;
    let anchor = webpki::anchor_from_trusted_cert(&ca).map_err(|_| CertRefusal::BadCa)?;
    let cert = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|_| CertRefusal::NotSigned("malformed certificate"))?;
    cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        intermediates,
        now,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(|e| {
        CertRefusal::NotSigned(match e {
            webpki::Error::CertExpired { .. } => "expired",
            webpki::Error::CertNotValidYet { .. } => "not valid yet",
            webpki::Error::UnknownIssuer => "unknown issuer",
            webpki::Error::InvalidSignatureForPublicKey => "bad signature",
            _ => "invalid",
        })
    })?;
    let issued = registered
        .cert_pem
        .as_deref()
        .and_then(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).ok());
    if issued.is_some_and(|issued| issued.as_ref() == end_entity.as_ref()) {
        return Ok(());
    }
    if common_name(end_entity).as_deref() == Some(client_id) {
        return Ok(());
    }
    Err(CertRefusal::OtherDevice)
}

fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };

    use super::*;

    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate from `ca` with subject CN `cn`: DER and PEM.
    fn device_cert(ca: &Ca, cn: &str) -> (CertificateDer<'static>, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        (cert.der().clone(), cert.pem())
    }

    #[test]
    fn admits_only_the_products_own_certificates_for_the_device() {
        let product = ca("product A");
        let other = ca("product B");
        let now = UnixTime::now();
        let (mine, mine_pem) = device_cert(&product, "AAAAAAAAAAdev1");
        let registered = DeviceCertificate {
            cert_pem: Some(mine_pem),
            ca_pem: product.pem.clone(),
        };
        assert_eq!(
            verify(
                "AAAAAAAAAAdev1",
                std::slice::from_ref(&mine),
                &registered,
                now
            ),
            Ok(())
        );
        // Another certificate for the same device from the product CA: named by its CN.
        let (reissued, _) = device_cert(&product, "AAAAAAAAAAdev1");
        assert_eq!(
            verify("AAAAAAAAAAdev1", &[reissued], &registered, now),
            Ok(())
        );
        // A sibling device's certificate does not admit this device.
        let (sibling, _) = device_cert(&product, "AAAAAAAAAAdev2");
        assert_eq!(
            verify("AAAAAAAAAAdev1", &[sibling], &registered, now),
            Err(CertRefusal::OtherDevice)
        );
        // The right name signed by another product's CA.
        let (foreign, _) = device_cert(&other, "AAAAAAAAAAdev1");
        assert!(matches!(
            verify("AAAAAAAAAAdev1", &[foreign], &registered, now),
            Err(CertRefusal::NotSigned(_))
        ));
        assert!(matches!(
            verify("AAAAAAAAAAdev1", &[], &registered, now),
            Err(CertRefusal::NotSigned(_))
        ));
    }
}
