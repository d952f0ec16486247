//! Every setting of the server, as a flag with a `TIJORI_*` environment
//! twin (SPEC §10). Units are part of the names.

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// fdatasync before acknowledging: survives power loss.
    Sync,
    /// Acknowledge once in OS buffers: survives a process crash only.
    Buffered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Parser)]
#[command(
    name = "tijori",
    version,
    about = "Tijori: an actor-based merchant payment processor"
)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, env = "TIJORI_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory of the embedded store.
    #[arg(long, env = "TIJORI_DATA_DIR", default_value = "./tijori-data")]
    pub data_dir: PathBuf,

    /// Bootstrap admin key to use instead of a random one (empty store only).
    #[arg(long, env = "TIJORI_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,

    /// Fault injection for tests: after this many group commits every
    /// commit fails as on a full disk. Hidden; never set in production.
    #[arg(long, hide = true)]
    pub fault_fail_commits_after: Option<u64>,

    /// When a money-moving response may be sent.
    #[arg(long, env = "TIJORI_DURABILITY", value_enum, default_value = "sync")]
    pub durability: DurabilityArg,

    /// Delay before the sandbox rail settles a transaction.
    #[arg(long, env = "TIJORI_SETTLE_DELAY_MS", default_value_t = 1_000)]
    pub settle_delay_ms: u64,

    /// A queued payout older than this is cancelled (SPEC §13); 3 days.
    #[arg(long, env = "TIJORI_PAYOUT_QUEUE_TTL_SECS", default_value_t = 259_200)]
    pub payout_queue_ttl_secs: u64,

    /// Share of pay-ins the sandbox fails (0.0 to 1.0), chosen by a hash of the id.
    #[arg(long, env = "TIJORI_PAYIN_FAILURE_RATE", default_value = "0", value_parser = parse_rate_ppm)]
    pub payin_failure_rate: u32,

    /// Requests per minute allowed to new users unless set per user.
    #[arg(long, env = "TIJORI_RATE_LIMIT_PER_MIN", default_value_t = 6_000)]
    pub rate_limit_per_min: u32,

    /// Rejections by the rate limiter within the misuse window that suspend a key.
    #[arg(long, env = "TIJORI_MISUSE_REJECTIONS", default_value_t = 1_000)]
    pub misuse_rejections: u32,

    /// Window of the misuse detector.
    #[arg(long, env = "TIJORI_MISUSE_WINDOW_SECS", default_value_t = 600)]
    pub misuse_window_secs: u64,

    /// Idle time after which a portal session ends (SPEC §18: 12 h).
    #[arg(
        long,
        env = "TIJORI_PORTAL_SESSION_IDLE_SECS",
        default_value_t = 43_200
    )]
    pub portal_session_idle_secs: u64,

    /// Most portal sessions held at once (the least recently used is ended first).
    #[arg(long, env = "TIJORI_PORTAL_SESSIONS_MAX", default_value_t = 10_000)]
    pub portal_sessions_max: usize,

    /// Allow webhook URLs on loopback and private networks.
    #[arg(long, env = "TIJORI_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,

    /// First webhook retry delay; later ones double (with ±20 % jitter).
    /// The default gives about 10 attempts over about a day.
    #[arg(long, env = "TIJORI_WEBHOOK_RETRY_BASE_MS", default_value_t = 180_000)]
    pub webhook_retry_base_ms: u64,

    /// Delivery attempts before an event is marked failed.
    #[arg(long, env = "TIJORI_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub webhook_max_attempts: u32,

    /// Webhook delivery workers (concurrent attempts in all).
    #[arg(long, env = "TIJORI_WEBHOOK_WORKERS", default_value_t = 32)]
    pub webhook_workers: usize,

    /// Most concurrent attempts against one receiving host.
    #[arg(long, env = "TIJORI_WEBHOOK_PER_HOST_MAX", default_value_t = 4)]
    pub webhook_per_host_max: usize,

    /// Time allowed for one attempt (connect to response headers).
    #[arg(long, env = "TIJORI_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,

    /// How long the previous signing secret keeps signing after a rotation.
    #[arg(
        long,
        env = "TIJORI_WEBHOOK_SECRET_GRACE_SECS",
        default_value_t = 86_400
    )]
    pub webhook_secret_grace_secs: u64,

    /// Log format.
    #[arg(long, env = "TIJORI_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Most open client connections; more wait in the accept queue.
    #[arg(long, env = "TIJORI_CONNECTIONS_MAX", default_value_t = 10_000)]
    pub connections_max: usize,

    /// Time a client has to send a request's headers.
    #[arg(long, env = "TIJORI_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// Time a client has to send a request's body.
    #[arg(long, env = "TIJORI_BODY_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,

    /// An idle wallet actor is stopped after this long (0: never).
    #[arg(long, env = "TIJORI_WALLET_IDLE_MAX_MS", default_value_t = 300_000)]
    pub wallet_idle_max_ms: u64,

    /// Most calls queued or running on one wallet.
    #[arg(long, env = "TIJORI_WALLET_INFLIGHT_MAX", default_value_t = 1_024)]
    pub wallet_inflight_max: usize,

    /// How often the sandbox connector looks for due transactions.
    #[arg(long, env = "TIJORI_CONNECTOR_POLL_MS", default_value_t = 20)]
    pub connector_poll_ms: u64,

    /// How often the live ledger audit checks every wallet (0: never).
    #[arg(
        long,
        env = "TIJORI_LEDGER_AUDIT_INTERVAL_MS",
        default_value_t = 30_000
    )]
    pub ledger_audit_interval_ms: u64,

    /// How often the statement writer looks for closed UTC days (it also
    /// runs at start; 0: never).
    #[arg(long, env = "TIJORI_STATEMENT_INTERVAL_MS", default_value_t = 10_000)]
    pub statement_interval_ms: u64,

    /// How long after midnight (UTC) a day counts as closed for statements.
    #[arg(long, env = "TIJORI_STATEMENT_GRACE_MS", default_value_t = 2_000)]
    pub statement_grace_ms: u64,

    /// Longest an online backup may run (it holds a snapshot meanwhile).
    #[arg(long, env = "TIJORI_BACKUP_MAX_SECS", default_value_t = 3_600)]
    pub backup_max_secs: u64,

    /// Most data an online backup may copy (keys and values), in MiB.
    #[arg(long, env = "TIJORI_BACKUP_MAX_MIB", default_value_t = 262_144)]
    pub backup_max_mib: u64,

    /// Seconds between settlement cycles (each sweeps every merchant's
    /// balance above its reserve to its settlement account); unset: daily
    /// at 00:00 UTC; 0: never (on demand only).
    #[arg(long, env = "TIJORI_SETTLEMENT_INTERVAL_SECS")]
    pub settlement_interval_secs: Option<u64>,

    /// Time allowed to drain in-flight requests on shutdown.
    #[arg(long, env = "TIJORI_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
}

/// Reads a rate such as `0.05` into parts per million, without a float.
fn parse_rate_ppm(text: &str) -> Result<u32, String> {
    let value: rust_decimal::Decimal = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a decimal number"))?;
    if value.is_sign_negative() || value > rust_decimal::Decimal::ONE {
        return Err("the rate must be between 0 and 1".into());
    }
    let ppm = (value * rust_decimal::Decimal::from(1_000_000)).trunc();
    u32::try_from(ppm.mantissa() / 10i128.pow(ppm.scale())).map_err(|_| "rate out of range".into())
}

impl Config {
    pub fn core(&self) -> actors::CoreConfig {
        actors::CoreConfig {
            settle_delay_ms: self.settle_delay_ms,
            payin_failure_ppm: self.payin_failure_rate,
            connector_poll_ms: self.connector_poll_ms,
            wallet_idle_max_ms: self.wallet_idle_max_ms,
            wallet_inflight_max: self.wallet_inflight_max,
            default_rate_limit_per_min: self.rate_limit_per_min,
            ledger_audit_interval_ms: self.ledger_audit_interval_ms,
            payout_queue_ttl_ms: self.payout_queue_ttl_secs.saturating_mul(1_000),
            webhooks: actors::webhook::WebhookConfig {
                policy: actors::webhook::RetryPolicy {
                    base_ms: self.webhook_retry_base_ms,
                    max_attempts: self.webhook_max_attempts,
                    ..actors::webhook::RetryPolicy::default()
                },
                workers: self.webhook_workers.clamp(1, 1_024),
                per_host_max: self.webhook_per_host_max.max(1),
                allow_private: self.webhook_allow_private,
                timeout_ms: self.webhook_timeout_ms,
                connect_timeout_ms: self.webhook_timeout_ms.min(5_000),
                secret_grace_ms: i64::try_from(
                    self.webhook_secret_grace_secs.saturating_mul(1_000),
                )
                .unwrap_or(i64::MAX),
                ..actors::webhook::WebhookConfig::default()
            },
            settlement_schedule: actors::SettlementSchedule::from_interval_secs(
                self.settlement_interval_secs,
            ),
            statements: actors::statements::StatementConfig {
                interval_ms: self.statement_interval_ms,
                grace_ms: i64::try_from(self.statement_grace_ms).unwrap_or(i64::MAX),
                ..actors::statements::StatementConfig::default()
            },
            ..actors::CoreConfig::default()
        }
    }

    pub fn store(&self) -> storage::StoreConfig {
        storage::StoreConfig {
            durability: match self.durability {
                DurabilityArg::Sync => storage::Durability::Sync,
                DurabilityArg::Buffered => storage::Durability::Buffered,
            },
            fail_after_rounds: self.fault_fail_commits_after,
            ..storage::StoreConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_rate_parses_exactly() {
        assert_eq!(parse_rate_ppm("0"), Ok(0));
        assert_eq!(parse_rate_ppm("0.05"), Ok(50_000));
        assert_eq!(parse_rate_ppm("1"), Ok(1_000_000));
        assert_eq!(parse_rate_ppm("0.0000015"), Ok(1));
        assert!(parse_rate_ppm("1.5").is_err());
        assert!(parse_rate_ppm("-0.1").is_err());
        assert!(parse_rate_ppm("abc").is_err());
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::parse_from(["tijori"]);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./tijori-data"));
        assert_eq!(c.durability, DurabilityArg::Sync);
        assert_eq!(c.settle_delay_ms, 1_000);
        assert_eq!(c.rate_limit_per_min, 6_000);
        assert!(!c.webhook_allow_private);
    }

    #[test]
    fn the_settlement_cycle_is_daily_unless_set_and_off_at_zero() {
        let schedule = |args: &[&str]| {
            Config::parse_from(args.iter().copied())
                .core()
                .settlement_schedule
        };
        assert_eq!(
            schedule(&["tijori"]),
            actors::SettlementSchedule::DailyUtcMidnight
        );
        assert_eq!(
            schedule(&["tijori", "--settlement-interval-secs", "0"]),
            actors::SettlementSchedule::Off
        );
        assert_eq!(
            schedule(&["tijori", "--settlement-interval-secs", "30"]),
            actors::SettlementSchedule::EverySecs(30)
        );
    }
}
