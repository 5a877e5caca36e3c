//! Firmware files on disk and the signed URLs that reach them.
//!
//! A product's firmware versions live under `<data-dir>/firmware/<ProductId>/<version>`.
//! Uploads (`GetCOSURL` → `PUT`) and downloads (the `url` of `update_firmware`) are plain
//! HTTP on the API listener, authorised by the URL itself, as Tencent's COS URLs are:
//! `?expires=<unix s>&sign=<hex HMAC-SHA256>` over the purpose, product, version and
//! expiry, under a key kept in `<data-dir>/firmware/.url-key` (so URLs survive restarts).

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use eddy_core::ProductId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// Longest firmware version (Tencent: 1–32 characters).
const MAX_VERSION_LEN: usize = 32;

/// What a signed URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlPurpose {
    Upload,
    Download,
}

impl UrlPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Download => "download",
        }
    }
}

/// The firmware directory and its URL key.
#[derive(Debug)]
pub struct FirmwareFiles {
    dir: PathBuf,
    key: Vec<u8>,
}

/// A firmware version Eddy can store as a file name: 1–32 of `[A-Za-z0-9._-]`, not `.` or
/// `..` (Tencent's versions look like `1.0.0` or `v2.1.3-beta`).
pub fn check_version(version: &str) -> Result<(), String> {
    let ok = !version.is_empty()
        && version.len() <= MAX_VERSION_LEN
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && version != "."
        && version != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be 1–{MAX_VERSION_LEN} characters [A-Za-z0-9._-], got {version:?}"
        ))
    }
}

impl FirmwareFiles {
    /// Opens `dir` (created with mode 0700 when missing) and its URL key (created once).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let key_path = dir.join(".url-key");
        let key = match std::fs::read(&key_path) {
            Ok(key) if key.len() >= 32 => key,
            _ => {
                let key: [u8; 32] = rand::random();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&key_path)?;
                file.write_all(&key)?;
                file.sync_all()?;
                key.to_vec()
            }
        };
        Ok(Self {
            dir: dir.to_owned(),
            key,
        })
    }

    /// Where a firmware version's file is (the version must have passed [`check_version`]).
    pub fn path(&self, product: &ProductId, version: &str) -> PathBuf {
        self.dir.join(product.as_str()).join(version)
    }

    /// A fresh temporary path beside the product's files, for an upload in progress.
    pub fn upload_path(&self, product: &ProductId) -> std::io::Result<PathBuf> {
        let dir = self.dir.join(product.as_str());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(dir.join(format!(".upload-{:016x}", rand::random::<u64>())))
    }

    fn signature(
        &self,
        purpose: UrlPurpose,
        product: &ProductId,
        version: &str,
        expires: i64,
    ) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(format!("{}\n{product}\n{version}\n{expires}", purpose.as_str()).as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// `<base>/firmware/<pid>/<version>?expires=…&sign=…` (uploads: `/firmware/upload/…`).
    pub fn url(
        &self,
        base: &str,
        purpose: UrlPurpose,
        product: &ProductId,
        version: &str,
        expires: i64,
    ) -> String {
        let sign = hex::encode(self.signature(purpose, product, version, expires));
        let path = match purpose {
            UrlPurpose::Upload => "firmware/upload",
            UrlPurpose::Download => "firmware",
        };
        format!(
            "{}/{path}/{product}/{version}?expires={expires}&sign={sign}",
            base.trim_end_matches('/')
        )
    }

    /// Whether a URL's `expires` and `sign` allow `purpose` on this file at `now`.
    pub fn verify(
        &self,
        purpose: UrlPurpose,
        product: &ProductId,
        version: &str,
        expires: i64,
        sign: &str,
        now: i64,
    ) -> bool {
        if expires < now {
            return false;
        }
        let Ok(given) = hex::decode(sign) else {
            return false;
        };
        bool::from(
            self.signature(purpose, product, version, expires)
                .ct_eq(&given),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_safe_file_names() {
        for ok in ["1.0.0", "v2.1.3-beta", "a_b", "X"] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "1/2", "../x", "a b", "é", &"9".repeat(33)] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signed_urls_name_one_file_one_purpose_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let files = FirmwareFiles::open(dir.path()).unwrap();
        let p = ProductId::parse("ABCDE12345").unwrap();
        let url = files.url("http://h:1/", UrlPurpose::Download, &p, "1.0", 100);
        assert!(
            url.starts_with("http://h:1/firmware/ABCDE12345/1.0?expires=100&sign="),
            "{url}"
        );
        let sign = url.rsplit_once("sign=").unwrap().1;
        assert!(files.verify(UrlPurpose::Download, &p, "1.0", 100, sign, 100));
        assert!(
            !files.verify(UrlPurpose::Download, &p, "1.0", 100, sign, 101),
            "expired"
        );
        assert!(
            !files.verify(UrlPurpose::Upload, &p, "1.0", 100, sign, 50),
            "purpose"
        );
        assert!(
            !files.verify(UrlPurpose::Download, &p, "1.1", 100, sign, 50),
            "version"
        );
        assert!(
            !files.verify(UrlPurpose::Download, &p, "1.0", 101, sign, 50),
            "expiry"
        );
        // The key survives a reopen, so do the URLs.
        let again = FirmwareFiles::open(dir.path()).unwrap();
        assert!(again.verify(UrlPurpose::Download, &p, "1.0", 100, sign, 50));
    }
}
