//! The Prometheus exporter: installs the `metrics` recorder with explicit
//! histogram buckets (the exporter would render summaries otherwise, which
//! `histogram_quantile` cannot use), describes every metric, registers at
//! zero the series that would otherwise appear only on first use, and at
//! render time samples what is read rather than counted: the process (the
//! standard `process_*` metrics, by `metrics-process`), the async runtime,
//! the commit queue, the wallets' in-flight calls, the settlements awaiting
//! the rail, and the data dir's disk. Every sample reads an in-memory
//! structure or one syscall; the one walk (the data dir's size) runs on a
//! blocking thread at most every `DIR_WALK_EVERY`. Metric names live in
//! `domain::metric_names`.

use crate::http::router::Route;
use domain::metric_names as m;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Latency buckets in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Write sets per fsync, a whole number >= 1. The bounds sit halfway
/// between whole numbers, so `le="1.5"` holds exactly the batches of one and
/// `le="2.5"` those of two, and `histogram_quantile`, which interpolates
/// linearly inside a bucket, reads 1 for a run of single-write fsyncs: with
/// `le="1"` as the first bucket it interpolated over (0, 1] and showed a
/// p50 of 0.5-0.76, a batch smaller than one. The empty `le="0.5"` bucket
/// is the lower edge of the first real one.
const BATCH_BUCKETS: &[f64] = &[
    0.5, 1.5, 2.5, 4.5, 8.5, 16.5, 32.5, 64.5, 128.5, 256.5, 512.5, 1024.5, 4096.5,
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
    process_collector().describe();
    process_collector().collect();
    metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    preregister();
    preregister_http();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Error statuses registered for every `/api/v1` route: bad input (400),
/// no or a wrong key (401), not allowed or suspended (403), unknown id
/// (404), rate limited (429), storage failure (500), saturated (503).
const API_ERROR_STATUSES: &[&str] = &["400", "401", "403", "404", "429", "500", "503"];
/// Also registered for `/api/v1` routes that write (POST, PATCH): a
/// duplicate or a second settlement (409), an idempotency conflict or
/// insufficient balance (422).
const WRITE_ERROR_STATUSES: &[&str] = &["409", "422"];

/// The status a route answers when it succeeds.
fn success_status(route: Route) -> &'static str {
    match route {
        Route::PaymentsCreate
        | Route::PayoutsCreate
        | Route::UsersCreate
        | Route::SettlementsCreate
        | Route::RefundsCreate => "201",
        Route::WebhookRedeliver | Route::WebhookReplay => "202",
        Route::Healthz
        | Route::Readyz
        | Route::Metrics
        | Route::Balance
        | Route::PaymentsList
        | Route::PaymentGet
        | Route::PaymentStatus
        | Route::PayoutsList
        | Route::PayoutGet
        | Route::PayoutStatus
        | Route::ProfileGet
        | Route::ProfilePatch
        | Route::ProfileApiKey
        | Route::ProfileWebhookSecret
        | Route::UsersList
        | Route::UserGet
        | Route::UserPatch
        | Route::UserApiKey
        | Route::ReportSummary
        | Route::ReportLedger
        | Route::LedgerAccounts
        | Route::LedgerTransfers
        | Route::WebhookEvents
        | Route::AdminBackup
        | Route::SettlementsList
        | Route::SettlementGet
        | Route::SettlementStatus
        | Route::RefundsList
        | Route::RefundGet
        | Route::RefundStatus
        | Route::StatementsList
        | Route::StatementsVerify
        | Route::StatementGet
        | Route::PayoutCancel
        | Route::PayoutsBatch
        | Route::AuditLog => "200",
    }
}

/// The (route, method, status) series of `tijori_http_requests_total`
/// registered at zero at start, so that `increase()` and `rate()` count a
/// route's first burst (a series that appears at 16 has no increase). The
/// rule, about 310 series: every route with its method and success status;
/// `/api/v1` routes also with `API_ERROR_STATUSES`, and those that write
/// also with `WRITE_ERROR_STATUSES`; `/readyz` with 503; unknown paths
/// (`unmatched`) for GET and POST with 404; the portal (`/portal`, one
/// label for all its pages) with GET 200 and POST 303. Rarer answers (405, 413, HEAD
/// requests) appear on first use. The latency histogram is not
/// pre-registered: a quantile needs observations anyway.
pub fn preregistered_http_series() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = Vec::new();
    for route in Route::ALL {
        let (method, template) = route.spec();
        let method = metric_method_name(&method);
        out.push((template, method, success_status(route)));
        if route.is_api() {
            let writes = matches!(method, "POST" | "PATCH");
            let extra = if writes { WRITE_ERROR_STATUSES } else { &[] };
            for status in API_ERROR_STATUSES.iter().chain(extra) {
                out.push((template, method, status));
            }
        }
        if route == Route::Readyz {
            out.push((template, method, "503"));
        }
    }
    out.push(("unmatched", "GET", "404"));
    out.push(("unmatched", "POST", "404"));
    // The web portal: every page under one label (SPEC §18).
    out.push((crate::portal::METRIC_LABEL, "GET", "200"));
    out.push((crate::portal::METRIC_LABEL, "POST", "303"));
    out
}

fn metric_method_name(method: &hyper::Method) -> &'static str {
    match *method {
        hyper::Method::POST => "POST",
        hyper::Method::PATCH => "PATCH",
        _ => "GET",
    }
}

fn preregister_http() {
    for (route, method, status) in preregistered_http_series() {
        metrics::counter!(m::HTTP_REQUESTS, "route" => route, "method" => method, "status" => status)
            .increment(0);
    }
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
    // No wallet actor runs before the server starts; nothing is pending.
    metrics::gauge!(m::WALLETS_ACTIVE).set(0.0);
    metrics::gauge!(m::SETTLEMENTS_PENDING).set(0.0);
    metrics::gauge!(m::SETTLEMENTS_OLDEST_PENDING_AGE).set(0.0);
    metrics::gauge!(m::PAYOUTS_QUEUED).set(0.0);
    metrics::gauge!(m::PAYOUTS_OLDEST_QUEUED_AGE).set(0.0);
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
        "create_refund",
        "settle_refund",
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
        m::WALLET_INFLIGHT_CALLS,
        "wallet calls holding an in-flight permit, over all live wallets"
    );
    describe_gauge!(
        m::WALLET_INFLIGHT_BUSIEST,
        "in-flight calls on the busiest wallet (503 once at the limit)"
    );
    describe_gauge!(
        m::WALLET_INFLIGHT_LIMIT,
        "in-flight calls allowed per wallet (wallet_inflight_max)"
    );
    describe_gauge!(
        m::STORAGE_COMMIT_QUEUE_DEPTH,
        "write sets queued for the group committer"
    );
    describe_gauge!(
        m::STORAGE_COMMIT_QUEUE_CAPACITY,
        "most write sets that may queue for the committer (commit_queue_depth)"
    );
    describe_gauge!(
        m::DATA_DIR_SIZE,
        Unit::Bytes,
        "disk space the data dir's files occupy (sampled at most every 30 s)"
    );
    describe_gauge!(
        m::DATA_DIR_FS_FREE,
        Unit::Bytes,
        "free space on the data dir's filesystem, for unprivileged users"
    );
    describe_gauge!(
        m::DATA_DIR_FS_SIZE,
        Unit::Bytes,
        "size of the data dir's filesystem"
    );
    describe_gauge!(
        m::SETTLEMENTS_PENDING,
        "pay-ins, payouts and settlements to merchants awaiting the rail"
    );
    describe_gauge!(
        m::SETTLEMENTS_OLDEST_PENDING_AGE,
        Unit::Seconds,
        "time since the oldest pay-in, payout or settlement awaiting the rail was created"
    );
    describe_gauge!(
        m::PAYOUTS_QUEUED,
        "payouts waiting in their wallets' queues for available balance (queue_if_low_balance)"
    );
    describe_gauge!(
        m::PAYOUTS_OLDEST_QUEUED_AGE,
        Unit::Seconds,
        "time since the oldest queued payout was created"
    );
    describe_gauge!(m::RUNTIME_WORKERS, "tokio runtime worker threads");
    describe_gauge!(
        m::RUNTIME_BUSY_RATIO,
        "share of the tokio workers' time spent busy since the previous sample (0-1)"
    );
    describe_gauge!(
        m::RUNTIME_GLOBAL_QUEUE_DEPTH,
        "tasks waiting in the tokio runtime's global queue"
    );
    describe_gauge!(
        m::LEDGER_AUDIT_ENABLED,
        "1 if the ledger audit runs, 0 if disabled (--ledger-audit-interval-ms 0)"
    );
    describe_gauge!(
        m::LEDGER_AUDIT_INTERVAL,
        Unit::Seconds,
        "how often the ledger audit runs; 0 when disabled"
    );
    describe_gauge!(
        m::LEDGER_AUDIT_OK,
        "1 if the last ledger audit found every wallet balanced (absent if disabled)"
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
        m::STATEMENTS_CLOSED_THROUGH,
        Unit::Seconds,
        "end (next midnight, UTC) of the last day with every merchant's statement written; 0 before the first complete run"
    );
    describe_counter!(m::STATEMENTS_WRITTEN, "daily statements written");
    describe_gauge!(m::BUILD_INFO, "build information; always 1");
}

/// How often at most the data dir is walked for its size.
const DIR_WALK_EVERY: Duration = Duration::from_secs(30);
/// Bounds of that walk (fjall keeps tens to hundreds of files).
const DIR_WALK_MAX_ENTRIES: usize = 100_000;
const DIR_WALK_MAX_DEPTH: usize = 8;
/// The runtime's busy ratio is measured over at least this long.
const BUSY_WINDOW_MIN: Duration = Duration::from_secs(1);

/// What the render-time samples read: in-memory structures kept current by
/// their owners, and the data dir.
pub struct Sources {
    pub store: storage::Store,
    pub wallets: actors::WalletHandle,
    pub settlements: Arc<actors::SettlementStats>,
    pub data_dir: PathBuf,
}

/// The recorder's handle and the samplers run before each render.
pub struct Exporter {
    handle: PrometheusHandle,
    sources: Sources,
    runtime: Option<tokio::runtime::Handle>,
    busy: Mutex<(Instant, Duration)>,
    dir: Arc<DirSize>,
}

#[derive(Default)]
struct DirSize {
    bytes: AtomicU64,
    walking: AtomicBool,
    walked_at: Mutex<Option<Instant>>,
}

impl Exporter {
    /// Call from within the server's tokio runtime (its metrics are read).
    pub fn new(handle: PrometheusHandle, sources: Sources) -> Exporter {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let busy = runtime.as_ref().map_or(Duration::ZERO, total_busy);
        let exporter = Exporter {
            handle,
            sources,
            runtime,
            busy: Mutex::new((Instant::now(), busy)),
            dir: Arc::new(DirSize::default()),
        };
        exporter.refresh_dir_size();
        exporter
    }

    fn sample(&self) {
        process_collector().collect();
        let (depth, capacity) = self.sources.store.commit_queue();
        metrics::gauge!(m::STORAGE_COMMIT_QUEUE_DEPTH).set(depth as f64);
        metrics::gauge!(m::STORAGE_COMMIT_QUEUE_CAPACITY).set(capacity as f64);
        let inflight = self.sources.wallets.inflight();
        metrics::gauge!(m::WALLET_INFLIGHT_CALLS).set(inflight.calls as f64);
        metrics::gauge!(m::WALLET_INFLIGHT_BUSIEST).set(inflight.busiest as f64);
        metrics::gauge!(m::WALLET_INFLIGHT_LIMIT).set(inflight.limit as f64);
        let settlements = &self.sources.settlements;
        let now_ms = domain::Timestamp::now().unix_ms();
        metrics::gauge!(m::SETTLEMENTS_PENDING).set(settlements.pending() as f64);
        metrics::gauge!(m::SETTLEMENTS_OLDEST_PENDING_AGE)
            .set(settlements.oldest_age_ms(now_ms) as f64 / 1_000.0);
        metrics::gauge!(m::PAYOUTS_QUEUED).set(settlements.queued_payouts() as f64);
        metrics::gauge!(m::PAYOUTS_OLDEST_QUEUED_AGE)
            .set(settlements.oldest_queued_age_ms(now_ms) as f64 / 1_000.0);
        self.sample_runtime();
        self.sample_disk();
    }

    fn sample_runtime(&self) {
        let Some(runtime) = &self.runtime else {
            return;
        };
        let metrics = runtime.metrics();
        let workers = metrics.num_workers();
        metrics::gauge!(m::RUNTIME_WORKERS).set(workers as f64);
        metrics::gauge!(m::RUNTIME_GLOBAL_QUEUE_DEPTH).set(metrics.global_queue_depth() as f64);
        let Ok(mut last) = self.busy.lock() else {
            return;
        };
        let (now, busy) = (Instant::now(), total_busy(runtime));
        let elapsed = now.saturating_duration_since(last.0);
        if elapsed >= BUSY_WINDOW_MIN {
            let ratio = busy_ratio(busy.saturating_sub(last.1), elapsed, workers);
            metrics::gauge!(m::RUNTIME_BUSY_RATIO).set(ratio);
            *last = (now, busy);
        }
    }

    fn sample_disk(&self) {
        if let Ok(fs) = rustix::fs::statvfs(&self.sources.data_dir) {
            let free = fs.f_bavail.saturating_mul(fs.f_frsize);
            let size = fs.f_blocks.saturating_mul(fs.f_frsize);
            metrics::gauge!(m::DATA_DIR_FS_FREE).set(free as f64);
            metrics::gauge!(m::DATA_DIR_FS_SIZE).set(size as f64);
        }
        let walked = self.dir.walked_at.lock().ok().and_then(|at| *at);
        if walked.is_some_and(|at| at.elapsed() >= DIR_WALK_EVERY) {
            self.refresh_dir_size();
        }
        metrics::gauge!(m::DATA_DIR_SIZE).set(self.dir.bytes.load(Ordering::Relaxed) as f64);
    }

    /// Walks the data dir on a blocking thread, unless a walk is under way.
    fn refresh_dir_size(&self) {
        if self.dir.walking.swap(true, Ordering::AcqRel) {
            return;
        }
        let (dir, path) = (self.dir.clone(), self.sources.data_dir.clone());
        let walk = move || {
            dir.bytes.store(dir_size(&path), Ordering::Relaxed);
            if let Ok(mut at) = dir.walked_at.lock() {
                *at = Some(Instant::now());
            }
            dir.walking.store(false, Ordering::Release);
        };
        match &self.runtime {
            Some(runtime) => drop(runtime.spawn_blocking(walk)),
            None => walk(),
        }
    }
}

/// Renders the Prometheus text, sampling first.
pub fn render(exporter: &Exporter) -> String {
    exporter.sample();
    exporter.handle.render()
}

/// The time all the runtime's workers have spent busy since it started.
fn total_busy(runtime: &tokio::runtime::Handle) -> Duration {
    let metrics = runtime.metrics();
    (0..metrics.num_workers())
        .map(|worker| metrics.worker_total_busy_duration(worker))
        .sum()
}

/// Share of `workers` threads' time over `elapsed` that `busy` is, in 0..=1.
fn busy_ratio(busy: Duration, elapsed: Duration, workers: usize) -> f64 {
    let capacity = elapsed.as_secs_f64() * workers as f64;
    if capacity <= 0.0 {
        return 0.0;
    }
    (busy.as_secs_f64() / capacity).clamp(0.0, 1.0)
}

/// Disk space taken by the files under `root` (allocated blocks, like
/// `du`), without following symlinks; bounded in entries and depth.
fn dir_size(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut seen = 0usize;
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > DIR_WALK_MAX_ENTRIES {
                return total;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() && depth < DIR_WALK_MAX_DEPTH {
                stack.push((entry.path(), depth + 1));
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ratio_is_a_share_of_the_workers_time() {
        let s = Duration::from_secs;
        assert_eq!(busy_ratio(s(1), s(2), 2), 0.25);
        assert_eq!(busy_ratio(s(4), s(2), 2), 1.0);
        assert_eq!(busy_ratio(s(0), s(2), 2), 0.0);
        assert_eq!(busy_ratio(s(1), Duration::ZERO, 2), 0.0);
        assert_eq!(busy_ratio(s(1), s(2), 0), 0.0);
    }

    #[test]
    fn dir_size_counts_allocated_blocks_of_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir_size(dir.path());
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f"), vec![7u8; 100_000]).unwrap();
        std::fs::write(dir.path().join("g"), vec![7u8; 10_000]).unwrap();
        let size = dir_size(dir.path()) - empty;
        // 110 000 bytes of data in whole blocks, plus two directories.
        assert!((110_000..200_000).contains(&size), "{size}");
        assert_eq!(dir_size(&dir.path().join("missing")), 0);
    }

    #[test]
    fn http_series_follow_the_documented_rule() {
        let series = preregistered_http_series();
        let unique: std::collections::BTreeSet<_> = series.iter().collect();
        assert_eq!(unique.len(), series.len(), "a series twice");
        assert!(series.len() < 400, "{} series", series.len());
        let has = |r: &str, m: &str, s: &str| series.contains(&(r, m, s));
        assert!(has("/api/v1/users", "POST", "201"));
        assert!(has("/api/v1/users", "POST", "422"));
        assert!(has("/api/v1/users", "GET", "200"));
        assert!(!has("/api/v1/users", "GET", "409"));
        assert!(has("/api/v1/payments/{id}", "GET", "404"));
        assert!(has("/api/v1/webhooks/replay", "POST", "202"));
        assert!(has("/api/v1/balance", "GET", "503"));
        assert!(has("/readyz", "GET", "503"));
        assert!(!has("/metrics", "GET", "401"));
        assert!(has("unmatched", "GET", "404"));
        for route in Route::ALL {
            let (_, template) = route.spec();
            assert!(
                series
                    .iter()
                    .any(|(r, _, s)| *r == template && s.starts_with('2')),
                "{template} has no success series"
            );
        }
    }
}
