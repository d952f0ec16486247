//! Every metric name, in one place (DESIGN §3.9). `tijori_` prefix, base
//! units in the name, counters end in `_total`. Labels are low-cardinality:
//! route templates, methods, status codes, outcomes; never an id. The
//! exporter (src/metrics.rs) gives every histogram explicit buckets, and a
//! test keeps grafana/ in step with this list.

// HTTP (RED)
pub const HTTP_REQUESTS: &str = "tijori_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "tijori_http_request_duration_seconds";
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "tijori_http_requests_in_flight";
pub const HTTP_CONNECTIONS_OPEN: &str = "tijori_http_connections_open";
pub const HTTP_REJECTIONS: &str = "tijori_http_rejections_total";
pub const RATE_LIMITED: &str = "tijori_rate_limited_total";

// Money flow
pub const PAYINS_CREATED: &str = "tijori_payins_created_total";
pub const PAYINS_SETTLED: &str = "tijori_payins_settled_total";
pub const PAYIN_AMOUNT: &str = "tijori_payin_amount_paise_total";
pub const PAYOUTS_CREATED: &str = "tijori_payouts_created_total";
pub const PAYOUTS_SETTLED: &str = "tijori_payouts_settled_total";
pub const PAYOUT_AMOUNT: &str = "tijori_payout_amount_paise_total";

// Wallet actors
pub const WALLETS_ACTIVE: &str = "tijori_wallets_active";
pub const WALLETS_SPAWNED: &str = "tijori_wallets_spawned_total";
pub const WALLETS_PASSIVATED: &str = "tijori_wallets_passivated_total";
pub const WALLETS_RESTARTED: &str = "tijori_wallets_restarted_total";
pub const WALLET_CALL_DURATION: &str = "tijori_wallet_call_duration_seconds";
/// Calls holding an in-flight permit, over all live wallets; the most held
/// by one wallet; and the per-wallet bound (`wallet_inflight_max`).
pub const WALLET_INFLIGHT_CALLS: &str = "tijori_wallet_inflight_calls";
pub const WALLET_INFLIGHT_BUSIEST: &str = "tijori_wallet_inflight_busiest_calls";
pub const WALLET_INFLIGHT_LIMIT: &str = "tijori_wallet_inflight_limit";

// Storage
pub const STORAGE_COMMITS: &str = "tijori_storage_commits_total";
pub const STORAGE_WRITE_SETS: &str = "tijori_storage_write_sets_total";
pub const STORAGE_COMMIT_FAILURES: &str = "tijori_storage_commit_failures_total";
pub const STORAGE_FSYNC_DURATION: &str = "tijori_storage_fsync_duration_seconds";
pub const STORAGE_FSYNC_BATCH: &str = "tijori_storage_fsync_batch_size";
/// Write sets durable in the journal but not yet applied by the indexer.
pub const STORAGE_INDEX_LAG: &str = "tijori_storage_index_lag_write_sets";
/// Write sets queued for the committer (the channel's occupancy), and its bound.
pub const STORAGE_COMMIT_QUEUE_DEPTH: &str = "tijori_storage_commit_queue_depth";
pub const STORAGE_COMMIT_QUEUE_CAPACITY: &str = "tijori_storage_commit_queue_capacity";
/// The data dir: bytes its files occupy (a bounded walk, at most every
/// 30 s), and its filesystem's free space for unprivileged users and size.
pub const DATA_DIR_SIZE: &str = "tijori_data_dir_size_bytes";
pub const DATA_DIR_FS_FREE: &str = "tijori_data_dir_filesystem_free_bytes";
pub const DATA_DIR_FS_SIZE: &str = "tijori_data_dir_filesystem_size_bytes";

// Settlements awaiting the rail (the connector's in-memory due queue)
pub const SETTLEMENTS_PENDING: &str = "tijori_settlements_pending";
pub const SETTLEMENTS_OLDEST_PENDING_AGE: &str = "tijori_settlements_oldest_pending_age_seconds";
// Payouts waiting in their wallets' queues (SPEC §13)
pub const PAYOUTS_QUEUED: &str = "tijori_payouts_queued";
pub const PAYOUTS_OLDEST_QUEUED_AGE: &str = "tijori_payouts_oldest_queued_age_seconds";

// Webhooks
pub const WEBHOOK_ATTEMPTS: &str = "tijori_webhook_attempts_total";
pub const WEBHOOK_DELIVERIES: &str = "tijori_webhook_deliveries_total";
pub const WEBHOOK_QUEUE_DEPTH: &str = "tijori_webhook_queue_depth";
pub const WEBHOOK_OLDEST_PENDING_AGE: &str = "tijori_webhook_oldest_pending_age_seconds";
pub const WEBHOOK_IN_FLIGHT: &str = "tijori_webhook_in_flight";
pub const WEBHOOK_DELIVERY_DELAY: &str = "tijori_webhook_delivery_delay_seconds";

// Ledger audit
pub const LEDGER_AUDIT_OK: &str = "tijori_ledger_audit_ok";
pub const LEDGER_AUDIT_LAST_RUN: &str = "tijori_ledger_audit_last_run_timestamp_seconds";
pub const LEDGER_AUDIT_WALLETS: &str = "tijori_ledger_audit_wallets_checked";
pub const LEDGER_AUDIT_FAILURES: &str = "tijori_ledger_audit_failures_total";
/// 1 if the audit runs (`ledger_audit_interval_ms` > 0), 0 if disabled.
pub const LEDGER_AUDIT_ENABLED: &str = "tijori_ledger_audit_enabled";
pub const LEDGER_AUDIT_INTERVAL: &str = "tijori_ledger_audit_interval_seconds";

// Daily statements (SPEC §15)
/// The end (next midnight, UTC) of the last day whose statements the writer
/// has written for every merchant; 0 until its first complete run.
pub const STATEMENTS_CLOSED_THROUGH: &str = "tijori_statements_closed_through_timestamp_seconds";
pub const STATEMENTS_WRITTEN: &str = "tijori_statements_written_total";

// Async runtime (tokio's stable RuntimeMetrics)
pub const RUNTIME_WORKERS: &str = "tijori_runtime_workers";
/// Share of the workers' time spent busy since the previous sample.
pub const RUNTIME_BUSY_RATIO: &str = "tijori_runtime_busy_ratio";
pub const RUNTIME_GLOBAL_QUEUE_DEPTH: &str = "tijori_runtime_global_queue_depth";

pub const BUILD_INFO: &str = "tijori_build_info";

// Process (USE): the standard names, exported by the `metrics-process`
// crate, so stock dashboards and alerts work unchanged. Not `tijori_`.
pub const PROCESS_CPU: &str = "process_cpu_seconds_total";
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
pub const PROCESS_VIRTUAL_MEMORY: &str = "process_virtual_memory_bytes";
pub const PROCESS_VIRTUAL_MEMORY_MAX: &str = "process_virtual_memory_max_bytes";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
pub const PROCESS_THREADS: &str = "process_threads";
pub const PROCESS_START_TIME: &str = "process_start_time_seconds";

/// The standard process metrics (see above).
pub const PROCESS: &[&str] = &[
    PROCESS_CPU,
    PROCESS_RESIDENT_MEMORY,
    PROCESS_VIRTUAL_MEMORY,
    PROCESS_VIRTUAL_MEMORY_MAX,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PROCESS_THREADS,
    PROCESS_START_TIME,
];

/// Every `tijori_` metric name, for describing them and for the dashboard
/// test (`PROCESS` lists the standard process metrics).
pub const ALL: &[&str] = &[
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS_IN_FLIGHT,
    HTTP_CONNECTIONS_OPEN,
    HTTP_REJECTIONS,
    RATE_LIMITED,
    PAYINS_CREATED,
    PAYINS_SETTLED,
    PAYIN_AMOUNT,
    PAYOUTS_CREATED,
    PAYOUTS_SETTLED,
    PAYOUT_AMOUNT,
    WALLETS_ACTIVE,
    WALLETS_SPAWNED,
    WALLETS_PASSIVATED,
    WALLETS_RESTARTED,
    WALLET_CALL_DURATION,
    WALLET_INFLIGHT_CALLS,
    WALLET_INFLIGHT_BUSIEST,
    WALLET_INFLIGHT_LIMIT,
    STORAGE_COMMITS,
    STORAGE_WRITE_SETS,
    STORAGE_COMMIT_FAILURES,
    STORAGE_FSYNC_DURATION,
    STORAGE_FSYNC_BATCH,
    STORAGE_INDEX_LAG,
    STORAGE_COMMIT_QUEUE_DEPTH,
    STORAGE_COMMIT_QUEUE_CAPACITY,
    DATA_DIR_SIZE,
    DATA_DIR_FS_FREE,
    DATA_DIR_FS_SIZE,
    SETTLEMENTS_PENDING,
    SETTLEMENTS_OLDEST_PENDING_AGE,
    PAYOUTS_QUEUED,
    PAYOUTS_OLDEST_QUEUED_AGE,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_QUEUE_DEPTH,
    WEBHOOK_OLDEST_PENDING_AGE,
    WEBHOOK_IN_FLIGHT,
    WEBHOOK_DELIVERY_DELAY,
    LEDGER_AUDIT_OK,
    LEDGER_AUDIT_LAST_RUN,
    LEDGER_AUDIT_WALLETS,
    LEDGER_AUDIT_FAILURES,
    LEDGER_AUDIT_ENABLED,
    LEDGER_AUDIT_INTERVAL,
    STATEMENTS_CLOSED_THROUGH,
    STATEMENTS_WRITTEN,
    RUNTIME_WORKERS,
    RUNTIME_BUSY_RATIO,
    RUNTIME_GLOBAL_QUEUE_DEPTH,
    BUILD_INFO,
];

#[cfg(test)]
mod tests {
    #[test]
    fn names_follow_the_conventions() {
        let mut seen = std::collections::HashSet::new();
        for name in super::ALL {
            assert!(name.starts_with("tijori_"), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert!(seen.insert(name), "{name} listed twice");
        }
        for name in super::PROCESS {
            assert!(name.starts_with("process_"), "{name}");
            assert!(seen.insert(name), "{name} listed twice");
        }
    }
}
