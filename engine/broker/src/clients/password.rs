//! Argon2 password hashes: making them (`eddy passwd`), checking them at start-up, and
//! verifying a CONNECT's password against them without stalling the broker.
//!
//! Argon2 is slow and memory-hungry on purpose (argon2id's defaults: 19 MiB, two passes),
//! so a verification never runs on an async worker: it goes to tokio's blocking pool, and a
//! semaphore lets only as many run at once as there are cores, so a flood of CONNECTs with
//! made-up passwords queues instead of taking the machine's memory. A bounded cache of
//! recent successes spares a reconnecting fleet the cost. The cache keeps no password and
//! no plain digest of one: only an HMAC under a key drawn at start-up, which is useless to
//! anyone who reads the process memory without the key.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;

use super::ClientRefusal;

/// Most users whose last successful password the cache remembers. Entries are per user,
/// so this bounds memory only for very large user lists.
const CACHE_CAPACITY: usize = 1024;

/// The most memory one configured hash may ask for, in KiB (256 MiB). A hash above it is
/// refused at start-up: with one verification per core it could exhaust the machine.
const MAX_M_COST_KIB: u32 = 256 * 1024;

/// Why a password could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("the password must not be empty")]
    Empty,
    #[error("argon2 failed: {0}")]
    Argon2(String),
}

/// Hashes `password` with argon2id at the crate's recommended parameters (19 MiB, t=2,
/// p=1) and a random salt; the PHC string is what `users[].password-hash` expects. MQTT
/// passwords are binary, so this takes bytes.
pub fn hash_password(password: &[u8]) -> Result<String, HashError> {
    if password.is_empty() {
        return Err(HashError::Empty);
    }
    Argon2::default()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|err| HashError::Argon2(err.to_string()))
}

/// Parses a configured PHC string and checks that it can be verified: an argon2 variant,
/// a known version, valid parameters within [`MAX_M_COST_KIB`], a salt and an output.
pub(super) fn parse_hash(phc: &str) -> Result<PasswordHash, String> {
    let hash = PasswordHash::new(phc).map_err(|err| format!("not a PHC string ({err})"))?;
    Algorithm::try_from(hash.algorithm.as_str()).map_err(|_| {
        format!(
            "algorithm {:?} is not argon2id, argon2i or argon2d",
            hash.algorithm.as_str()
        )
    })?;
    if let Some(version) = hash.version {
        argon2::Version::try_from(version)
            .map_err(|_| format!("argon2 version {version} is unknown"))?;
    }
    let params = Params::try_from(&hash).map_err(|err| format!("bad parameters ({err})"))?;
    if params.m_cost() > MAX_M_COST_KIB {
        return Err(format!(
            "m={} KiB is more memory than the {MAX_M_COST_KIB} KiB allowed per verification",
            params.m_cost()
        ));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("the salt or the hash output is missing".into());
    }
    Ok(hash)
}

/// Verifies passwords: the cache, the concurrency limit and the decoy for unknown users.
pub(super) struct Verifier {
    /// Keyed once per process; clones of it compute the cache's HMACs.
    mac: Hmac<Sha256>,
    cache: Mutex<Cache>,
    /// One permit per verification allowed to run at once.
    slots: Arc<Semaphore>,
    /// A real user's hash, verified (and the answer discarded) for unknown usernames.
    decoy: Option<Arc<PasswordHash>>,
    /// Argon2 verifications run so far (tests tell cache hits from misses with it).
    pub(super) verifications: AtomicU64,
}

/// The last successful password of each user, as an HMAC, with a use stamp for eviction.
#[derive(Default)]
struct Cache {
    entries: HashMap<String, CacheEntry>,
    clock: u64,
}

struct CacheEntry {
    mac: [u8; 32],
    last_used: u64,
}

impl Verifier {
    pub(super) fn new(decoy: Option<Arc<PasswordHash>>) -> Self {
        let key: [u8; 64] = rand::random();
        let slots = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self {
            mac: <Hmac<Sha256> as Mac>::new(&key.into()),
            cache: Mutex::default(),
            slots: Arc::new(Semaphore::new(slots)),
            decoy,
            verifications: AtomicU64::new(0),
        }
    }

    /// Whether `password` is right for `username`, whose hash is `hash` (`None`: unknown).
    ///
    /// A cache hit needs the same HMAC (compared in constant time); anything else runs
    /// argon2, also for unknown users (against the decoy, result discarded), so refusing
    /// an unknown user takes as long as refusing a wrong password.
    pub(super) async fn verify(
        &self,
        username: &str,
        password: &[u8],
        hash: Option<Arc<PasswordHash>>,
    ) -> Result<bool, ClientRefusal> {
        let mac = self.mac_of(username, password);
        if hash.is_some() && self.cached(username, &mac) {
            return Ok(true);
        }
        let known = hash.is_some();
        let Some(target) = hash.or_else(|| self.decoy.clone()) else {
            // No users at all: there is nothing to hide and nothing to verify against.
            return Ok(false);
        };
        // The permit moves into the task, so a client that hangs up mid-check does not
        // free its slot before the CPU work is done.
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ClientRefusal::Unavailable)?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let password = password.to_vec();
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            Argon2::default()
                .verify_password(&password, target.as_ref())
                .is_ok()
        })
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "the password verification task failed");
            ClientRefusal::Unavailable
        })?;
        let accepted = known && matched;
        if accepted {
            self.remember(username, mac);
        }
        Ok(accepted)
    }

    /// HMAC over the length-prefixed username and the password, so that no two
    /// (username, password) pairs share an input.
    fn mac_of(&self, username: &str, password: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(&(username.len() as u64).to_be_bytes());
        mac.update(username.as_bytes());
        mac.update(password);
        mac.finalize().into_bytes().into()
    }

    fn cached(&self, username: &str, mac: &[u8; 32]) -> bool {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.clock += 1;
        let now = cache.clock;
        match cache.entries.get_mut(username) {
            Some(entry) if bool::from(entry.mac.ct_eq(mac)) => {
                entry.last_used = now;
                true
            }
            _ => false,
        }
    }

    fn remember(&self, username: &str, mac: [u8; 32]) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.clock += 1;
        let now = cache.clock;
        if cache.entries.len() >= CACHE_CAPACITY && !cache.entries.contains_key(username) {
            // Evicting scans the table, but only when a new user arrives at a full cache.
            let oldest = cache
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                cache.entries.remove(&oldest);
            }
        }
        cache.entries.insert(
            username.to_owned(),
            CacheEntry {
                mac,
                last_used: now,
            },
        );
    }

    #[cfg(test)]
    pub(super) fn cached_users(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash_password(b"correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let hash = parse_hash(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &hash)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"correct horsE", &hash)
                .is_err()
        );
        assert_eq!(hash_password(b""), Err(HashError::Empty));
    }

    #[test]
    fn unusable_hashes_are_named() {
        let bad = [
            ("", "not a PHC string"),
            ("plaintext", "not a PHC string"),
            (
                "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
                "is not argon2id",
            ),
            ("$argon2id$v=19$m=19456,t=2,p=1", "missing"),
            (
                "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "more memory",
            ),
            (
                "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "bad parameters",
            ),
        ];
        for (phc, why) in bad {
            let err = parse_hash(phc).unwrap_err();
            assert!(err.contains(why), "{phc}: {err}");
        }
    }
}
