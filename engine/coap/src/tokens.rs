//! Authentication tokens: what Tencent's CoAP auth request returns and every publish
//! carries in option 61. Kept in memory: after a restart a device's publish gets 4.01 and
//! it authenticates again (the protocol's own recovery).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_broker::DeviceSession;
use eddy_core::DeviceId;
use rand::Rng as _;
use rand::distr::Alphanumeric;

/// Tencent's tokens are about ten ASCII characters.
const TOKEN_LEN: usize = 10;

#[derive(Debug)]
struct Entry {
    session: Arc<DeviceSession>,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Table {
    by_token: HashMap<String, Entry>,
    /// Each device's current token: authenticating again replaces it.
    by_device: HashMap<DeviceId, String>,
}

#[derive(Debug)]
pub(crate) struct Tokens {
    ttl: Duration,
    /// Most tokens held; issuing one more drops the expired ones first, then refuses.
    max: usize,
    table: Mutex<Table>,
}

impl Tokens {
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            table: Mutex::new(Table::default()),
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
        let mut table = self.lock();
        // A device authenticating again replaces its older token.
        let device = session.device().clone();
        if let Some(old) = table.by_device.remove(&device) {
            table.by_token.remove(&old);
        }
        if table.by_token.len() >= self.max {
            let Table {
                by_token,
                by_device,
            } = &mut *table;
            by_token.retain(|_, e| e.expires > now);
            by_device.retain(|_, token| by_token.contains_key(token));
            if by_token.len() >= self.max {
                return None;
            }
        }
        table.by_device.insert(device, token.clone());
        table.by_token.insert(
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
        let mut table = self.lock();
        let entry = table.by_token.get(token)?;
        if entry.expires <= Instant::now() {
            let device = entry.session.device().clone();
            table.by_token.remove(token);
            table.by_device.remove(&device);
            return None;
        }
        Some(entry.session.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
