//! One actor per merchant wallet: `messages` (what it understands),
//! `actor` (how it handles them), `handle` (the public API).

pub(crate) mod actor;
pub mod handle;
pub mod messages;
