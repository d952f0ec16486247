//! Every integration test of the `tijori` package, in one test binary.
//!
//! Each module was once its own file under `tests/`, so its own test
//! binary linking hyper, fjall and the rest of the stack: building those
//! was most of a fresh `cargo test`; one binary is built once. The modules'
//! tests all run in parallel in this one process, so none of them may rely
//! on process-wide state (environment, panic hook, globals) being its own.
//!
//! One module: `cargo test -p tijori --test it webhooks::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;
mod common;

mod api_authz;
mod api_durability;
mod api_endpoints;
mod api_errors;
mod api_keys_limits;
mod api_smoke;
mod api_strict_input;
mod audit_log;
mod full_disk;
mod loadtest_audit;
mod money_v2_crash;
mod openapi_routes;
mod ops;
mod payouts_lifecycle;
mod portal;
mod prometheus_dashboards;
mod refunds;
mod settlements;
mod statements;
mod webhooks;
