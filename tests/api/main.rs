//! End-to-end tests of the Cloud API against a real `eddy serve` process, signed with
//! TC3-HMAC-SHA256 as Tencent's SDKs sign.

// Test code: a failed expectation panics with its context.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod devices;
mod errors;
mod postgres;
mod products;
mod restart;
mod rules;
mod topic_policies;
