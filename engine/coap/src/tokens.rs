//! Authentication tokens: what Tencent's CoAP auth request returns and every publish
//! carries in option 61. Kept in memory: after a restart a device's publish gets 4.01 and
//! it authenticates again (the protocol's own recovery).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_broker::DeviceSession;
use rand::Rng as _;
use rand::distr::Alphanumeric;

/// Tencent's tokens are about ten ASCII characters.
const TOKEN_LEN: usize = 10;

#[derive(Debug)]
struct Entry {
    session: Arc<DeviceSession>,
    expires: Instant,
}

#[derive(Debug)]
pub(crate) struct Tokens {
    ttl: Duration,
    /// Most tokens held; issuing one more drops the expired ones first, then refuses.
    max: usize,
    by_token: Mutex<HashMap<String, Entry>>,
}

impl Tokens {
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            by_token: Mutex::new(HashMap::new()),
        }
    }

    /// A new token for `session`; `None` when the table is full of live tokens.
    pub(crate) fn issue(&self, session: DeviceSession) -> Option<String> {
        let token: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(TOKEN_LEN)
            .map(char::from)
            .collect();
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= self.max {
            map.retain(|_, e| e.expires > now);
            if map.len() >= self.max {
                return None;
            }
        }
        // A device authenticating again replaces its older tokens.
        let device = session.device().clone();
        map.retain(|_, e| *e.session.device() != device);
        map.insert(
            token.clone(),
            Entry {
                session: Arc::new(session),
                expires: now + self.ttl,
            },
        );
        Some(token)
    }

    /// The session a live token belongs to.
    pub(crate) fn session(&self, token: &[u8]) -> Option<Arc<DeviceSession>> {
        let token = std::str::from_utf8(token).ok()?;
        let mut map = self.lock();
        let entry = map.get(token)?;
        if entry.expires <= Instant::now() {
            map.remove(token);
            return None;
        }
        Some(entry.session.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.by_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
