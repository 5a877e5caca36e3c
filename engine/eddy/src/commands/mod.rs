//! What each subcommand does.

pub mod admin_key;
pub mod dlq;
pub mod group;
pub mod logs;
pub mod manage;
pub mod ota;
mod output;
pub mod passwd;
pub mod rule;
pub mod serve;
