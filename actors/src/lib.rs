//! The money core's concurrency: one supervised ractor actor per merchant
//! wallet serialises that wallet's balance changes; a sharded registry finds
//! (or spawns) it; the sandbox connector settles pending transactions.
//!
//! The only way in is `WalletHandle` (and `Core`, which owns it): the HTTP
//! layer calls its methods and never builds an actor message itself.

pub mod audit;
mod config;
mod connector;
mod core;
pub mod directory;
mod registry;
pub mod settlement_cycle;
pub mod statements;
pub mod wallet;
pub mod webhook;

pub use crate::core::Core;
pub use config::CoreConfig;
pub use connector::SettlementStats;
pub use directory::{Directory, NewUser, UserPatch};
pub use settlement_cycle::SettlementSchedule;
pub use wallet::handle::{Created, Inflight, WalletHandle};
pub use wallet::messages::{Idempotency, NewPayin, NewPayout, NewRefund};
