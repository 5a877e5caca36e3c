//! Client events — connected, disconnected, refused at authentication, subscribed — for
//! the device logs (`eddy-logs`; later also Tencent's `StatusChange` forwarding).
//!
//! They are emitted under the router's lock, so they come in exactly the order in which
//! connections took over and released their ClientIds: a reconnect's `Connected` is never
//! overtaken by the replaced connection's `Disconnected`. Delivery is a broadcast: a
//! consumer that falls more than [`CAPACITY`] events behind is told how many it missed
//! (`RecvError::Lagged`), and the broker never waits for it.

use std::net::IpAddr;
use std::sync::Arc;

use eddy_core::DeviceId;
use tokio::sync::broadcast;

/// Events held for slow consumers.
pub const CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEventKind {
    Connected,
    Disconnected,
    /// A CONNECT was refused at authentication (`detail` says why).
    AuthFailed,
    /// A SUBSCRIBE was answered (`detail` lists the filters granted and refused).
    Subscribed,
}

/// One client came or went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEvent {
    pub kind: ClientEventKind,
    pub client_id: Arc<str>,
    /// The Tencent device, for a device's connection.
    pub device: Option<DeviceId>,
    pub client_ip: IpAddr,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// What happened, in words (empty for connects and disconnects).
    pub detail: Arc<str>,
}

#[derive(Debug)]
pub(crate) struct Events(broadcast::Sender<ClientEvent>);

impl Default for Events {
    fn default() -> Self {
        Self(broadcast::channel(CAPACITY).0)
    }
}

impl Events {
    pub fn emit(
        &self,
        kind: ClientEventKind,
        client_id: &Arc<str>,
        device: Option<&DeviceId>,
        client_ip: IpAddr,
        detail: &str,
    ) {
        // No receiver is not an error: a hub may run without device logs.
        let _ = self.0.send(ClientEvent {
            kind,
            client_id: client_id.clone(),
            device: device.cloned(),
            client_ip,
            at_ms: eddy_core::time::unix_now_ms(),
            detail: Arc::from(detail),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.0.subscribe()
    }
}
