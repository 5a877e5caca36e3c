//! Development TLS material: a CA and a server certificate it signs, for the MQTT TLS
//! listeners when no certificate is configured, and for `eddy cert dev`.
//!
//! Never for production: the CA's key sits beside the certificate it signed.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A development CA and a server certificate it signed, PEM.
#[derive(Debug)]
pub struct DevCertificates {
    pub ca_cert: String,
    pub ca_key: String,
    pub server_cert: String,
    pub server_key: String,
}

/// The names a development server certificate holds besides the ones asked for.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A new CA and a server certificate for `hosts` (DNS names or IP addresses) and the
/// loopback names, valid for ten years.
pub fn dev_certificates(hosts: &[String]) -> anyhow::Result<DevCertificates> {
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Eddy development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut names: Vec<String> = LOCAL_NAMES.iter().map(|n| (*n).to_owned()).collect();
    for host in hosts {
        if !names.contains(host) {
            names.push(host.clone());
        }
    }
    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(names)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "Eddy development server");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = now - time::Duration::days(1);
    server.not_after = now + time::Duration::days(3650);
    let server_cert = server.signed_by(&server_key, &issuer)?;
    Ok(DevCertificates {
        ca_cert: ca_cert.pem(),
        ca_key: issuer.key().serialize_pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
    })
}

impl DevCertificates {
    /// Writes `ca.pem`, `ca.key`, `server.pem`, `server.key` into `dir` (keys 0600).
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_file(&dir.join("ca.pem"), &self.ca_cert, 0o644)?;
        write_file(&dir.join("ca.key"), &self.ca_key, 0o600)?;
        write_file(&dir.join("server.pem"), &self.server_cert, 0o644)?;
        write_file(&dir.join("server.key"), &self.server_key, 0o600)
    }
}

fn write_file(path: &PathBuf, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The TLS listeners' certificate when none is configured: `dir/server.pem` and
/// `dir/server.key`, generated once (with `dir/ca.pem` for clients to trust).
pub fn development_server_cert(dir: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    if !cert.is_file() || !key.is_file() {
        dev_certificates(&[])?.write(dir)?;
    }
    tracing::warn!(
        ca = %dir.join("ca.pem").display(),
        "mqtt.tls-cert is not set: the TLS listeners use a generated development certificate \
         (localhost, 127.0.0.1, ::1); clients must trust the CA named here. Set mqtt.tls-cert \
         and mqtt.tls-key for production"
    );
    Ok((
        std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?,
        std::fs::read(&key).with_context(|| format!("reading {}", key.display()))?,
    ))
}
