//! Settings of the money core. Every limit carries its unit in its name.

use crate::statements::StatementConfig;
use crate::webhook::WebhookConfig;
use domain::money::AmountLimits;

#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// How long the sandbox rail takes to settle a transaction.
    pub settle_delay_ms: u64,
    /// Share of pay-ins the sandbox fails, in parts per million, chosen by a
    /// hash of the transaction id (deterministic).
    pub payin_failure_ppm: u32,
    /// How often the connector looks for due transactions.
    pub connector_poll_ms: u64,
    /// Most settlements the connector has in flight at once.
    pub connector_inflight_max: usize,
    /// A wallet idle this long is stopped (passivated); 0 keeps them all.
    pub wallet_idle_max_ms: u64,
    /// Most calls queued or running on one wallet; more wait, then fail.
    pub wallet_inflight_max: usize,
    /// How long a call waits for a wallet (queueing plus processing).
    pub wallet_call_timeout_ms: u64,
    /// Most restarts of one wallet within `restart_window_ms` before the
    /// supervisor stops restarting it eagerly (it is spawned again on use).
    pub wallet_restarts_max: u32,
    pub restart_window_ms: u64,
    /// How long an Idempotency-Key is remembered.
    pub idempotency_ttl_ms: i64,
    /// How often the ledger audit runs (0: never).
    pub ledger_audit_interval_ms: u64,
    /// Webhook delivery.
    pub webhooks: WebhookConfig,
    /// Rate limit given to new users unless set.
    pub default_rate_limit_per_min: u32,
    /// Default per-transaction amount limits.
    pub amount_limits: AmountLimits,
    /// When the settlement cycle sweeps merchants' balances (off unless set).
    pub settlement_schedule: crate::SettlementSchedule,
    /// The daily statement writer.
    pub statements: StatementConfig,
    /// A queued payout older than this is cancelled (SPEC §13).
    pub payout_queue_ttl_ms: u64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            settle_delay_ms: 1_000,
            payin_failure_ppm: 0,
            connector_poll_ms: 20,
            connector_inflight_max: 1_024,
            wallet_idle_max_ms: 300_000,
            wallet_inflight_max: 1_024,
            wallet_call_timeout_ms: 10_000,
            wallet_restarts_max: 5,
            restart_window_ms: 10_000,
            idempotency_ttl_ms: 24 * 3_600 * 1_000,
            ledger_audit_interval_ms: 30_000,
            webhooks: WebhookConfig::default(),
            default_rate_limit_per_min: 6_000,
            amount_limits: AmountLimits::default(),
            settlement_schedule: crate::SettlementSchedule::Off,
            statements: StatementConfig::default(),
            payout_queue_ttl_ms: 259_200_000,
        }
    }
}
