//! # eddy — the binary that wires the stages together
//!
//! `eddy serve` loads the configuration, opens the store, makes sure an admin API key
//! exists, and starts the MQTT broker, the device services, the device logs and the rule
//! engine (each fed by the broker; the services and rule actions publish back through it),
//! the delivery layer with its plugins, and the management API (later: CoAP). Every other subcommand is a client of the Cloud
//! API, signed with TC3-HMAC-SHA256 like Tencent's SDKs.
//!
//! Only this crate knows all the others; the stages meet through traits in `eddy-core`.

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod delivery;
pub mod destinations;
pub mod directory;
pub mod logs;
pub mod rules;
pub mod tls;
