//! End-to-end tests of the Cloud API against a real `eddy serve` process, signed with
//! TC3-HMAC-SHA256 as Tencent's SDKs sign.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod devices;
mod errors;
mod products;
mod restart;
mod topic_policies;
