//! # eddy — the binary that wires the stages together
//!
//! `eddy serve` loads the configuration, opens the store, makes sure an admin API key
//! exists, and starts the MQTT broker, the rule engine (fed by the broker, publishing
//! back through it) and the management API (later: CoAP, delivery and plugins, each from
//! its own crate). Every other subcommand is a client of the Cloud
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
pub mod rules;
