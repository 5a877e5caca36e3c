//! `eddy serve`: open the store, ensure an admin key, serve the MQTT broker and the API
//! until SIGINT/SIGTERM.

use std::os::unix::fs::DirBuilderExt as _;
use std::sync::Arc;

use anyhow::Context as _;
use eddy_api::{ApiState, MetricsRenderer};
use eddy_broker::Broker;
use eddy_broker::ListenerKind;
use eddy_broker::transport::{TlsAcceptor, WsSettings};
use eddy_core::secret::ExposeSecret as _;
use eddy_store::{PgStore, SqliteStore, Store};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::directory::StoreDirectory;

pub async fn run(config: Config) -> anyhow::Result<()> {
    for key in &config.ignored_env {
        tracing::warn!(
            variable = %key,
            "ignoring an EDDY_ environment variable that names no configuration key"
        );
    }
    // The data dir holds device keys and the admin key: only its owner may read it.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let store = open_store(&config).await?;
    super::admin_key::ensure(&config, store.as_ref()).await?;

    let mqtt = TcpListener::bind(config.mqtt.listen)
        .await
        .with_context(|| format!("binding the MQTT listener to {}", config.mqtt.listen))?;
    let mqtt_addr = mqtt.local_addr()?;
    let directory: Arc<dyn eddy_broker::DeviceDirectory> =
        Arc::new(StoreDirectory::new(store.clone()));
    let mqtt_listeners = mqtt_transports(&config, mqtt, directory.clone()).await?;
    let (coap_addr, coap_dtls_addr) = config.coap.listeners()?;
    let coap_socket = match coap_addr {
        Some(addr) => Some(
            tokio::net::UdpSocket::bind(addr)
                .await
                .with_context(|| format!("binding coap.listen to {addr}"))?,
        ),
        None => None,
    };
    let coap_dtls_socket = match coap_dtls_addr {
        Some(addr) => Some(
            tokio::net::UdpSocket::bind(addr)
                .await
                .with_context(|| format!("binding coap.dtls-listen to {addr}"))?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("binding the API listener to {}", config.api.listen))?;
    let addr = listener.local_addr()?;
    // Stable lines on stdout: scripts and tests read the bound addresses from them. The
    // API line comes last: when it is printed, every listener is up.
    println!("eddy: mqtt listening on {mqtt_addr}");
    for (listener, kind) in &mqtt_listeners[1..] {
        println!(
            "eddy: mqtt-{} listening on {}",
            kind.name(),
            listener.local_addr()?
        );
    }
    if let Some(socket) = &coap_socket {
        println!("eddy: coap listening on {}", socket.local_addr()?);
        tracing::warn!(addr = %socket.local_addr()?, "plain CoAP is on: its authentication carries no proof of the device key");
    }
    if let Some(socket) = &coap_dtls_socket {
        println!("eddy: coap-dtls listening on {}", socket.local_addr()?);
    }
    println!("eddy: api listening on http://{addr}");
    tracing::info!(%addr, "cloud API listening");
    tracing::info!(addr = %mqtt_addr, "MQTT listening");

    // Persistent sessions and their queued messages: the durable log (DESIGN.md
    // decision 5), beside the registry in the data dir.
    let log_dir = config.data_dir.join("queue");
    let log = eddy_queue::Log::open(&log_dir)
        .with_context(|| format!("opening the durable log in {}", log_dir.display()))?;
    let broker = Broker::new(
        config.mqtt.broker_settings()?,
        directory,
        config.mqtt.clients.client_rules()?,
        &log,
    )
    .await
    .context("restoring persistent sessions")?;
    // Rule actions: a durable queue per action in the same log, delivered by Wasm
    // destination plugins (republish reaches the router through the broker's Publish).
    let delivery = eddy_delivery::Delivery::open(&log, config.delivery.settings()?)
        .context("opening the delivery queues")?;
    let plugins = eddy_plugin_host::PluginHost::new(
        config.plugins.settings()?,
        eddy_plugin_host::Connectors::new(Some(broker.clone())),
    )
    .context("starting the plugin host")?;
    // The rule engine sees every accepted message and queues its output for the actions.
    // Its stored rules are loaded before the broker serves, so no message misses them.
    let forward_hosts = crate::destinations::ForwardHosts::new(&config.plugins.forward_hosts);
    let factory = crate::destinations::PluginFactory::new(
        plugins.clone(),
        &config.destinations,
        forward_hosts.clone(),
    )
    .context("loading the configured destinations")?;
    let destination_names = factory.names();
    let rules = eddy_rules::RuleEngine::start(
        config.rules.engine_settings()?,
        delivery.clone(),
        Arc::new(factory),
    )
    .context("starting the rule engine")?;
    // The device services answer device requests on Tencent's reserved topics; they see
    // each accepted message before the rule engine does.
    let services = eddy_services::Services::start(
        store.clone(),
        broker.clone(),
        config.services.settings(&config.data_dir, addr)?,
    )
    .context("opening the firmware directory")?;
    // The device logs: client events from the broker, and every accepted message.
    let device_logs = match config.device_logs.settings(&config.data_dir)? {
        Some(settings) => {
            let logs = eddy_logs::DeviceLogs::start(settings)
                .context("opening the device log directory")?;
            tokio::spawn(crate::logs::record_events(logs.clone(), broker.events()));
            Some(logs)
        }
        None => None,
    };
    let mut taps: Vec<Arc<dyn eddy_core::MessageTap>> = vec![services.clone()];
    if let Some(logs) = &device_logs {
        taps.push(logs.clone());
    }
    taps.push(rules.clone());
    broker.set_tap(Arc::new(eddy_core::Taps(taps)));
    // CoAP devices publish into the same broker (and so the same taps); they are served
    // from when the broker is, below.
    let coap = eddy_coap::Coap::new(broker.clone(), config.coap.settings()?);
    let coap_dtls = match coap_dtls_socket {
        Some(socket) => Some(
            coap.clone()
                .serve_dtls(socket, broker.directory.clone())
                .map_err(|e| anyhow::anyhow!("setting up coap.dtls-listen: {e}"))?,
        ),
        None => None,
    };
    let mut registry = Registry::default();
    broker.metrics.register(&mut registry);
    coap.metrics().register(&mut registry);
    registry.register_collector(rules.collector());
    registry.register_collector(Box::new(delivery.collector()));
    registry.register_collector(Box::new(plugins.collector()));
    let registry = Arc::new(registry);
    let render = MetricsRenderer(Arc::new(move || {
        let mut out = String::new();
        if let Err(err) = encode(&mut out, &registry) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        out
    }));
    let mut api_state = ApiState::new(store)
        .with_downlink(broker.clone())
        .with_services(services)
        .with_rules(Arc::new(crate::rules::RulesHook {
            engine: rules,
            destinations: destination_names,
            forward_hosts,
        }))
        .with_delivery(Arc::new(crate::delivery::DeliveryApi(delivery.clone())))
        .with_max_rules(config.rules.max_rules)
        .with_max_sub_devices(config.services.max_sub_devices)
        .with_metrics(render);
    if let Some(logs) = device_logs {
        api_state = api_state.with_logs(Arc::new(crate::logs::LogsApi(logs)));
    }
    api_state
        .reload_rules()
        .await
        .context("loading the stored topic rules")?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut broker_stop = stop_rx.clone();
    if let Some(socket) = coap_socket {
        tokio::spawn(coap.clone().serve_udp(socket));
    }
    if let Some(dtls) = coap_dtls {
        tokio::spawn(dtls);
    }
    let broker_task = tokio::spawn(broker.clone().serve_listeners(mqtt_listeners, async move {
        let _ = broker_stop.wait_for(|stop| *stop).await;
    }));
    let api = eddy_api::serve(listener, api_state, async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    api.await.context("serving the API")?;
    let _ = broker_task.await;
    // Whatever a worker has not delivered stays queued for the next start.
    delivery.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// The MQTT listeners: plain TCP first, then TLS, WebSocket and secure WebSocket when
/// configured (all bound before the hub says it is up).
async fn mqtt_transports(
    config: &Config,
    tcp: TcpListener,
    directory: Arc<dyn eddy_broker::DeviceDirectory>,
) -> anyhow::Result<Vec<(TcpListener, ListenerKind)>> {
    let addrs = config.mqtt.listeners()?;
    let mut listeners = vec![(tcp, ListenerKind::Tcp)];
    let tls = if addrs.tls.is_some() || addrs.wss.is_some() {
        let settings = config.mqtt.tls_settings(&config.data_dir)?;
        Some(Arc::new(TlsAcceptor::new(&settings, directory).map_err(
            |e| anyhow::anyhow!("setting up the TLS listeners: {e}"),
        )?))
    } else {
        None
    };
    let ws = Arc::new(WsSettings {
        path: config.mqtt.ws_path.clone(),
    });
    let wanted = [
        (
            addrs.tls,
            tls.clone().map(ListenerKind::Tls),
            "mqtt.tls-listen",
        ),
        (
            addrs.ws,
            Some(ListenerKind::Ws(ws.clone())),
            "mqtt.ws-listen",
        ),
        (
            addrs.wss,
            tls.map(|tls| ListenerKind::Wss(tls, ws)),
            "mqtt.wss-listen",
        ),
    ];
    for (addr, kind, key) in wanted {
        if let (Some(addr), Some(kind)) = (addr, kind) {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {key} to {addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, listener = kind.name(), "MQTT listening");
            listeners.push((listener, kind));
        }
    }
    Ok(listeners)
}

/// The registry store the config asks for: PostgreSQL when a URL is set, else SQLite.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match &config.store.postgres_url {
        Some(url) => Arc::new(
            PgStore::connect(url.expose_secret())
                .await
                .context("connecting to the PostgreSQL registry (store.postgres-url)")?,
        ),
        None => {
            let db = config.database_path();
            Arc::new(
                SqliteStore::open(&db)
                    .await
                    .with_context(|| format!("opening the registry database {}", db.display()))?,
            )
        }
    };
    let backend = if config.store.postgres_url.is_some() {
        "postgresql".to_owned()
    } else {
        config.database_path().display().to_string()
    };
    tracing::info!(%backend, schema_version = store.schema_version().await?, "registry store open");
    Ok(store)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
