//! One actor per merchant wallet: `messages` (what it understands),
//! `actor` (how it handles them), `inflight` (what it wrote that storage
//! cannot show yet), `handle` (the public API).

pub(crate) mod actor;
pub mod handle;
mod inflight;
pub mod messages;
