//! The broker on its own (no registry, no API): generic clients against a `Broker` served
//! on an ephemeral port, checking what only the broker's API shows — its connect and
//! disconnect events.

// Test code: a failed expectation panics with its context.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{STEP, open_broker};
use eddy_broker::events::{ClientEvent, ClientEventKind};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

async fn next_event(events: &mut tokio::sync::broadcast::Receiver<ClientEvent>) -> ClientEvent {
    tokio::time::timeout(STEP, events.recv())
        .await
        .expect("an event in time")
        .expect("no lag")
}

#[tokio::test]
async fn connects_and_disconnects_are_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = open_broker(dir.path()).await;
    let mut events = broker.events();

    let options = || {
        let mut o = MqttOptions::new("gadget", addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(60));
        o
    };
    let (client, mut eventloop) = AsyncClient::new(options(), 8);
    loop {
        match tokio::time::timeout(STEP, eventloop.poll()).await.unwrap() {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => {}
            Err(err) => panic!("{err:?}"),
        }
    }
    let online = next_event(&mut events).await;
    assert_eq!(online.kind, ClientEventKind::Connected);
    assert_eq!(&*online.client_id, "gadget");
    assert_eq!(online.device, None);
    assert!(online.client_ip.is_loopback());

    // A second connection with the same ClientId takes over: one more Connected, and the
    // replaced connection ends without a Disconnected (the client never went away).
    let (second, mut second_loop) = AsyncClient::new(options(), 8);
    loop {
        match tokio::time::timeout(STEP, second_loop.poll())
            .await
            .unwrap()
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => {}
            Err(err) => panic!("{err:?}"),
        }
    }
    assert_eq!(
        next_event(&mut events).await.kind,
        ClientEventKind::Connected
    );
    drop((client, eventloop));

    second.disconnect().await.unwrap();
    while second_loop.poll().await.is_ok() {}
    let offline = next_event(&mut events).await;
    assert_eq!(offline.kind, ClientEventKind::Disconnected);
    assert_eq!(&*offline.client_id, "gadget");
    assert!(offline.at_ms >= online.at_ms);
}
