//! Webhooks (SPEC §7): the dispatcher and its worker pool, the retry
//! policy, signatures, the SSRF guard and the HTTP transport.

pub mod dispatcher;
pub mod fresh;
pub mod policy;
pub mod signing;
pub mod special_ranges;
pub mod ssrf;
pub mod transport;
mod unapplied;

pub use dispatcher::{
    Clock, DispatcherArgs, ReplayRequest, Replayed, WebhookConfig, WebhookHandle, WebhookStats,
};
pub use fresh::FreshEvents;
pub use policy::RetryPolicy;
pub use transport::{Attempt, HttpTransport, Outcome, Transport};
