//! A `Broker` on its own (no registry, no API) on an ephemeral port, admitting anonymous
//! generic clients to every topic.

use std::sync::Arc;
use std::time::Duration;

use eddy_broker::clients::{AclAction, AclRule, ClientRules, ClientsSettings, Permission};
use eddy_broker::{Broker, BrokerSettings, NoDevices};

/// Longest any single step may take on a loaded machine.
pub const STEP: Duration = Duration::from_secs(60);

/// A broker admitting anonymous clients to every topic, listening on 127.0.0.1.
pub async fn open_broker(dir: &std::path::Path) -> (Arc<Broker>, std::net::SocketAddr) {
    let rules = ClientRules::new(ClientsSettings {
        enabled: true,
        anonymous: true,
        acl: vec![AclRule {
            permission: Permission::Allow,
            action: AclAction::All,
            username: None,
            client_id: None,
            topics: vec!["#".into()],
        }],
        ..ClientsSettings::default()
    })
    .unwrap();
    let log = eddy_queue::Log::open(dir).unwrap();
    let broker = Broker::new(BrokerSettings::default(), Arc::new(NoDevices), rules, &log)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(broker.clone().serve(listener, std::future::pending()));
    (broker, addr)
}
