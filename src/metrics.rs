//! The Prometheus exporter: installs the `metrics` recorder with explicit
//! histogram buckets (the exporter would render summaries otherwise, which
//! `histogram_quantile` cannot use), describes every metric, and samples the
//! process (CPU, memory, file descriptors, threads) from /proc at render
//! time. Metric names live in `domain::metric_names`.

use domain::metric_names as m;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Latency buckets in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Write sets per fsync.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];
/// Webhook delay from the causing commit to acknowledgement, in seconds.
const DELIVERY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
    86400.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder once per process and returns its handle.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(m::STORAGE_FSYNC_BATCH.into()), BATCH_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(m::WEBHOOK_DELIVERY_DELAY.into()),
            DELIVERY_BUCKETS,
        )?;
    let handle = builder.install_recorder()?;
    describe();
    metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!(m::PROCESS_START_TIME).set(process_start_secs());
    metrics::gauge!(m::LEDGER_AUDIT_OK).set(1.0);
    preregister();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Registers at zero the counters and histograms (with their known label
/// sets) that only appear after some event: a failure, a restart, a
/// settlement outcome, a delivered webhook. A dashboard then shows 0 rather
/// than "no data", and `rate()` counts the first event as an increase
/// instead of a series appearing at 1. `increment(0)` adds nothing to a
/// counter that already moved.
fn preregister() {
    use domain::{PaymentStatus, PayoutStatus};
    for name in [
        m::RATE_LIMITED,
        m::PAYINS_CREATED,
        m::PAYOUTS_CREATED,
        m::WALLETS_SPAWNED,
        m::WALLETS_PASSIVATED,
        m::WALLETS_RESTARTED,
        m::STORAGE_COMMITS,
        m::STORAGE_WRITE_SETS,
        m::STORAGE_COMMIT_FAILURES,
        m::WEBHOOK_ATTEMPTS,
        m::LEDGER_AUDIT_FAILURES,
    ] {
        metrics::counter!(name).increment(0);
    }
    let payin_outcomes = [PaymentStatus::Completed, PaymentStatus::Failed].map(|s| s.as_str());
    let payout_outcomes = [PayoutStatus::Processed, PayoutStatus::Rejected].map(|s| s.as_str());
    for outcome in payin_outcomes {
        metrics::counter!(m::PAYINS_SETTLED, "outcome" => outcome).increment(0);
    }
    for outcome in payout_outcomes {
        metrics::counter!(m::PAYOUTS_SETTLED, "outcome" => outcome).increment(0);
    }
    for stage in std::iter::once("created").chain(payin_outcomes) {
        metrics::counter!(m::PAYIN_AMOUNT, "stage" => stage).increment(0);
    }
    for stage in std::iter::once("created").chain(payout_outcomes) {
        metrics::counter!(m::PAYOUT_AMOUNT, "stage" => stage).increment(0);
    }
    // The results actors/src/webhook/dispatcher.rs records.
    for result in ["delivered", "failed_attempt", "exhausted"] {
        metrics::counter!(m::WEBHOOK_DELIVERIES, "result" => result).increment(0);
    }
    // No wallet actor runs before the server starts.
    metrics::gauge!(m::WALLETS_ACTIVE).set(0.0);
    metrics::gauge!(m::STORAGE_INDEX_LAG).set(0.0);
    // A registered histogram renders with empty buckets until it records.
    for name in [
        m::STORAGE_FSYNC_DURATION,
        m::STORAGE_FSYNC_BATCH,
        m::WEBHOOK_DELIVERY_DELAY,
    ] {
        let _ = metrics::histogram!(name);
    }
    // The commands actors/src/wallet/handle.rs times.
    for command in [
        "create_payin",
        "settle_payin",
        "create_payout",
        "settle_payout",
    ] {
        let _ = metrics::histogram!(m::WALLET_CALL_DURATION, "command" => command);
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        m::HTTP_REQUESTS,
        "HTTP requests by route template, method and status"
    );
    describe_histogram!(
        m::HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "HTTP request latency by route and method"
    );
    describe_gauge!(m::HTTP_REQUESTS_IN_FLIGHT, "HTTP requests being handled");
    describe_gauge!(m::HTTP_CONNECTIONS_OPEN, "open client connections");
    describe_counter!(m::HTTP_REJECTIONS, "error responses by error code");
    describe_counter!(m::RATE_LIMITED, "requests refused by the rate limiter");
    describe_counter!(m::PAYINS_CREATED, "pay-ins created (acknowledged)");
    describe_counter!(m::PAYINS_SETTLED, "pay-ins settled, by outcome");
    describe_counter!(m::PAYIN_AMOUNT, "pay-in amounts in paise, by stage");
    describe_counter!(m::PAYOUTS_CREATED, "payouts created (acknowledged)");
    describe_counter!(m::PAYOUTS_SETTLED, "payouts settled, by outcome");
    describe_counter!(m::PAYOUT_AMOUNT, "payout amounts in paise, by stage");
    describe_gauge!(m::WALLETS_ACTIVE, "wallet actors alive");
    describe_counter!(m::WALLETS_SPAWNED, "wallet actors started");
    describe_counter!(m::WALLETS_PASSIVATED, "idle wallet actors stopped");
    describe_counter!(
        m::WALLETS_RESTARTED,
        "wallet actors restarted after a failure"
    );
    describe_histogram!(
        m::WALLET_CALL_DURATION,
        Unit::Seconds,
        "wallet command latency including durability, by command"
    );
    describe_counter!(m::STORAGE_COMMITS, "group commits (one fsync each)");
    describe_counter!(m::STORAGE_WRITE_SETS, "write sets made durable");
    describe_counter!(
        m::STORAGE_COMMIT_FAILURES,
        "failed group commits (the store is poisoned after one)"
    );
    describe_histogram!(
        m::STORAGE_FSYNC_DURATION,
        Unit::Seconds,
        "journal persist (fsync) latency"
    );
    describe_histogram!(m::STORAGE_FSYNC_BATCH, "write sets per fsync");
    describe_gauge!(
        m::STORAGE_INDEX_LAG,
        "write sets durable in the journal, not yet applied for reads"
    );
    describe_counter!(m::WEBHOOK_ATTEMPTS, "webhook delivery attempts");
    describe_counter!(
        m::WEBHOOK_DELIVERIES,
        "webhook attempt results: delivered, failed_attempt, exhausted"
    );
    describe_gauge!(
        m::WEBHOOK_QUEUE_DEPTH,
        "webhook deliveries waiting (due now or later)"
    );
    describe_gauge!(
        m::WEBHOOK_OLDEST_PENDING_AGE,
        Unit::Seconds,
        "how overdue the oldest waiting delivery is"
    );
    describe_gauge!(m::WEBHOOK_IN_FLIGHT, "webhook attempts in progress");
    describe_histogram!(
        m::WEBHOOK_DELIVERY_DELAY,
        Unit::Seconds,
        "delay from the causing commit to acknowledgement"
    );
    describe_gauge!(
        m::LEDGER_AUDIT_OK,
        "1 if the last ledger audit found every wallet balanced"
    );
    describe_gauge!(
        m::LEDGER_AUDIT_LAST_RUN,
        Unit::Seconds,
        "when the last ledger audit finished"
    );
    describe_gauge!(
        m::LEDGER_AUDIT_WALLETS,
        "wallets checked by the last ledger audit"
    );
    describe_counter!(
        m::LEDGER_AUDIT_FAILURES,
        "wallets found unbalanced by audits"
    );
    describe_gauge!(
        m::PROCESS_CPU,
        Unit::Seconds,
        "CPU time used by the process (only grows)"
    );
    describe_gauge!(m::PROCESS_RESIDENT_MEMORY, Unit::Bytes, "resident memory");
    describe_gauge!(m::PROCESS_OPEN_FDS, "open file descriptors");
    describe_gauge!(m::PROCESS_MAX_FDS, "file descriptor limit");
    describe_gauge!(m::PROCESS_THREADS, "OS threads");
    describe_gauge!(
        m::PROCESS_START_TIME,
        Unit::Seconds,
        "process start, unix seconds"
    );
    describe_gauge!(m::BUILD_INFO, "build information; always 1");
}

/// Renders the Prometheus text, sampling the process first.
pub fn render(handle: &PrometheusHandle) -> String {
    sample_process();
    handle.render()
}

/// Clock ticks per second of /proc/*/stat (USER_HZ; 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

fn proc_stat_fields() -> Option<Vec<String>> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name (which may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn sample_process() {
    if let Some(fields) = proc_stat_fields() {
        // rest[0] is field 3 (state); utime is field 14, stime 15, threads 20.
        let num = |field: usize| {
            fields
                .get(field - 3)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // A gauge, so that fractions of a second show (a counter holds whole
        // units only); it only ever grows, and rate() works on it.
        metrics::gauge!(m::PROCESS_CPU).set((num(14) + num(15)) / TICKS_PER_SEC);
        metrics::gauge!(m::PROCESS_THREADS).set(num(20));
    }
    if let Some(rss_pages) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
    {
        metrics::gauge!(m::PROCESS_RESIDENT_MEMORY).set(rss_pages * 4096.0);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!(m::PROCESS_OPEN_FDS).set(fds.count() as f64);
    }
    if let Some(limit) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(3)
                        .and_then(|v| v.parse::<f64>().ok())
                })
        })
    {
        metrics::gauge!(m::PROCESS_MAX_FDS).set(limit);
    }
}

fn process_start_secs() -> f64 {
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines().find(|l| l.starts_with("btime")).and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
    });
    let start_ticks =
        proc_stat_fields().and_then(|f| f.get(22 - 3).and_then(|v| v.parse::<f64>().ok()));
    match (boot, start_ticks) {
        (Some(boot), Some(ticks)) => boot + ticks / TICKS_PER_SEC,
        _ => domain::Timestamp::now().unix_ms() as f64 / 1_000.0,
    }
}
