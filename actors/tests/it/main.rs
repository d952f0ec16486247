//! Every integration test of the `actors` crate, in one test binary.
//!
//! Each module was once its own file under `actors/tests/`, so its own test
//! binary linking fjall, hyper and the rest of the stack: building those
//! was most of a fresh `cargo test`; one binary is built once. The modules'
//! tests all run in parallel in this one process, so none of them may rely
//! on process-wide state (environment, panic hook, globals) being its own.
//!
//! One module: `cargo test -p actors --test it crash::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod concurrency;
mod crash;
mod payout_crash;
mod recovery;
mod settlements;

mod refunds;
mod simulation;
mod smoke;
mod statements;
mod webhook_retry;
