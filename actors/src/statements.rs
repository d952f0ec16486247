//! Daily statements (SPEC §15): the writer that closes UTC days, and the
//! verifier behind `GET /statements/verify`.
//!
//! The writer runs at start and then every `interval_ms`. For each merchant
//! it resumes from the point its chain reached (kept durably next to the
//! statements, in the same write set: last day written, closing balances,
//! last seq and posting read, last hash) and reads only the transfers the
//! wallet posted after it, so a run costs what changed, not all history.
//! It writes the statements of every closed day not yet written, quiet days
//! included. A day is closed once the clock is `grace_ms` past its end
//! (and every write submitted before the run is applied): a transfer dated
//! just before midnight is visible by then. Each run reads at most
//! `transfers_per_run` transfers and closes at most `statements_per_run`
//! days; when it stops short the next run follows at once. The chains it is
//! building stay in memory between runs (a restart resumes from the durable
//! point).
//!
//! Time comes from a `Clock`: the system's in production, a `ManualClock`
//! that tests move by hand.

use crate::Directory;
use domain::metric_names as names;
use domain::statement::{Chain, ChainPoint, Closed, Date, Statement};
use domain::{Timestamp, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage::{StorageError, Store, WriteSet};

/// Where the statement writer gets "now" from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(at: Timestamp) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(at.unix_ms())))
    }

    pub fn set(&self, at: Timestamp) {
        self.0.store(at.unix_ms(), Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_ms(self.0.load(Ordering::Acquire))
    }
}

/// Settings of the statement writer.
#[derive(Clone, Debug)]
pub struct StatementConfig {
    /// How often it looks for closed days (0: never; only `run_once`).
    pub interval_ms: u64,
    /// How long after midnight (UTC) a day counts as closed.
    pub grace_ms: i64,
    /// Most transfers one run reads.
    pub transfers_per_run: usize,
    /// Most statements one run writes.
    pub statements_per_run: usize,
}

impl Default for StatementConfig {
    fn default() -> Self {
        StatementConfig {
            interval_ms: 10_000,
            grace_ms: 2_000,
            transfers_per_run: 100_000,
            statements_per_run: 10_000,
        }
    }
}

/// What the writer has done, for metrics and tests.
#[derive(Debug)]
pub struct StatementStats {
    pub runs: AtomicU64,
    pub written: AtomicU64,
    pub transfers_read: AtomicU64,
    pub failures: AtomicU64,
    /// Days since the epoch of the newest day written (any merchant); -1: none.
    pub newest_day: AtomicI64,
}

impl Default for StatementStats {
    fn default() -> Self {
        StatementStats {
            runs: AtomicU64::new(0),
            written: AtomicU64::new(0),
            transfers_read: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            newest_day: AtomicI64::new(-1),
        }
    }
}

/// One run's outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    pub written: usize,
    pub transfers_read: usize,
    /// The run stopped at its bounds: there is more to do now.
    pub more: bool,
    pub problems: Vec<String>,
}

pub struct StatementWriter {
    store: Store,
    directory: Directory,
    clock: Arc<dyn Clock>,
    config: StatementConfig,
    /// Each merchant's chain as far as it has been read.
    chains: HashMap<UserId, Chain>,
    /// Merchants whose ledger the chain refused (logged once; retried after
    /// a restart).
    broken: HashSet<UserId>,
    stats: Arc<StatementStats>,
}

/// One merchant's statements to write, and its point after them.
struct Batch {
    statements: Vec<Statement>,
    point: ChainPoint,
}

/// How much of a run's bounds is left.
struct Budget {
    transfers: usize,
    statements: usize,
}

const READ_BATCH: usize = 1_024;

impl StatementWriter {
    pub fn new(
        store: Store,
        directory: Directory,
        clock: Arc<dyn Clock>,
        config: StatementConfig,
    ) -> StatementWriter {
        StatementWriter {
            store,
            directory,
            clock,
            config,
            chains: HashMap::new(),
            broken: HashSet::new(),
            stats: Arc::new(StatementStats::default()),
        }
    }

    pub fn stats(&self) -> Arc<StatementStats> {
        self.stats.clone()
    }

    /// The last day that counts as closed now.
    fn last_closed(&self) -> Date {
        Date::of(self.clock.now().plus_ms(-self.config.grace_ms)).prev()
    }

    /// Writes the statements of closed days not yet written, within the
    /// run's bounds.
    pub async fn run_once(&mut self) -> RunReport {
        let mut report = RunReport::default();
        if let Err(e) = self.store.applied_barrier().await {
            report
                .problems
                .push(format!("waiting for applied writes: {e}"));
            return report;
        }
        let last_closed = self.last_closed();
        let mut budget = Budget {
            transfers: self.config.transfers_per_run.max(1),
            statements: self.config.statements_per_run.max(1),
        };
        let mut merchants = self.directory.merchants();
        merchants.sort_unstable();
        for merchant in merchants {
            if budget.transfers == 0 || budget.statements == 0 {
                report.more = true;
                break;
            }
            if self.broken.contains(&merchant) {
                continue;
            }
            let read_before = budget.transfers;
            let batch = self.collect(&merchant, last_closed, &mut budget);
            report.transfers_read += read_before - budget.transfers;
            let batch = match batch {
                Ok(Some(batch)) => batch,
                Ok(None) => continue,
                Err(problem) => {
                    report.problems.push(problem);
                    continue;
                }
            };
            let mut writes = WriteSet::new();
            let written = writes
                .statements_written(&batch.statements, &batch.point)
                .map(|()| writes);
            let committed = match written {
                Ok(writes) => self.store.commit(writes).await,
                Err(e) => Err(e),
            };
            match committed {
                Ok(()) => {
                    report.written += batch.statements.len();
                    if let Some(day) = batch.statements.last().map(|s| s.date.days()) {
                        self.stats
                            .newest_day
                            .fetch_max(i64::from(day), Ordering::AcqRel);
                    }
                }
                Err(e) => {
                    // Resume from the durable point next time.
                    self.chains.remove(&merchant);
                    report
                        .problems
                        .push(format!("writing statements of {merchant}: {e}"));
                }
            }
        }
        if budget.transfers == 0 || budget.statements == 0 {
            report.more = true;
        }
        metrics::counter!(names::STATEMENTS_WRITTEN).increment(report.written as u64);
        if !report.more && report.problems.is_empty() {
            let through = last_closed.next().start().unix_ms() as f64 / 1_000.0;
            metrics::gauge!(names::STATEMENTS_CLOSED_THROUGH).set(through);
        }
        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .written
            .fetch_add(report.written as u64, Ordering::Relaxed);
        self.stats
            .transfers_read
            .fetch_add(report.transfers_read as u64, Ordering::Relaxed);
        if !report.problems.is_empty() {
            self.stats
                .failures
                .fetch_add(report.problems.len() as u64, Ordering::Relaxed);
            tracing::error!(problem = %report.problems[0], count = report.problems.len(), "statement writer");
        }
        report
    }

    /// Reads one merchant's new transfers and closes its closed days.
    fn collect(
        &mut self,
        merchant: &UserId,
        last_closed: Date,
        budget: &mut Budget,
    ) -> Result<Option<Batch>, String> {
        let fail = |why: String| format!("statements of {merchant}: {why}");
        let chain = match self.chains.get_mut(merchant) {
            Some(chain) => chain,
            None => {
                let point = self
                    .store
                    .statement_point(merchant)
                    .map_err(|e| fail(e.to_string()))?
                    .unwrap_or_else(|| ChainPoint::start(*merchant));
                self.chains.entry(*merchant).or_insert(Chain::resume(point))
            }
        };
        if chain.next_date().is_some_and(|d| d > last_closed) {
            // Every closed day is written; what is unread belongs to a day
            // still open. Nothing to read.
            return Ok(None);
        }
        let mut out: Vec<Closed> = Vec::new();
        let mut failure = None;
        // Days close by the clock only once every transfer of a closed day
        // is read: the ledger ends, or the next transfer is of an open day.
        let mut caught_up = false;
        'read: while budget.transfers > 0 && out.len() < budget.statements {
            // Before the first transfer, look at one: it is often today's.
            let want = if chain.next_date().is_none() {
                1
            } else {
                READ_BATCH.min(budget.transfers)
            };
            let batch = self
                .store
                .ledger(merchant, chain.last_posting() + 1, want)
                .map_err(|e| fail(e.to_string()))?;
            for transfer in &batch {
                // A transfer of a day still open (and all after it) waits
                // for that day to close.
                let own_day = Date::of(transfer.created_at);
                if own_day > last_closed {
                    caught_up = true;
                    break 'read;
                }
                if transfer.seq > 0 {
                    // The days before its day close first, within the bound.
                    let room = budget.statements.saturating_sub(out.len());
                    chain.close_before(own_day, room, &mut out);
                    if chain.next_date().is_some_and(|d| d < own_day) {
                        break 'read;
                    }
                }
                budget.transfers -= 1;
                if let Err(e) = chain.feed(transfer, &mut out) {
                    failure = Some(fail(e.0));
                    break 'read;
                }
            }
            if batch.len() < want {
                caught_up = true;
                break;
            }
        }
        if failure.is_none() && caught_up {
            // The quiet days up to the last closed one.
            let room = budget.statements.saturating_sub(out.len());
            chain.close_before(last_closed.next(), room, &mut out);
        }
        budget.statements = budget.statements.saturating_sub(out.len());
        if let Some(problem) = failure {
            self.broken.insert(*merchant);
            self.chains.remove(merchant);
            // What was closed before the bad transfer is still right.
            if out.is_empty() {
                return Err(problem);
            }
            tracing::error!(%problem, "statement writer stops at a transfer it cannot take");
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        let Some(point) = out.last().map(|c| c.point.clone()) else {
            return Ok(None);
        };
        Ok(Some(Batch {
            statements: out.into_iter().map(|c| c.statement).collect(),
            point,
        }))
    }

    /// Runs at once and then every `interval_ms` (at once again while a
    /// run stops at its bounds), until the task is aborted.
    pub async fn run(mut self) {
        let interval = Duration::from_millis(self.config.interval_ms.max(1));
        loop {
            let report = self.run_once().await;
            if !report.more {
                tokio::time::sleep(interval).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// `GET /statements/verify`'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub first_bad: Option<Date>,
}

/// Recomputes merchants' statement chains from their ledgers and compares
/// them with the stored statements. The recomputation is kept between calls
/// (the ledger only grows): a call reads the transfers posted since the
/// last one, and every stored statement (one row per day).
#[derive(Default)]
pub struct Verifier {
    cache: Mutex<HashMap<UserId, Recomputed>>,
}

/// One merchant's chain recomputed from its ledger so far.
#[derive(Clone)]
struct Recomputed {
    chain: Chain,
    /// The hash of each day closed so far, oldest first.
    hashes: Vec<(Date, [u8; 32])>,
    /// The ledger refused a transfer: from this day on nothing can match.
    broken_at: Option<Date>,
}

const VERIFY_PAGE: usize = 512;

impl Verifier {
    /// Verifies one merchant's stored statements against its ledger.
    pub fn verify(&self, store: &Store, merchant: &UserId) -> Result<Verdict, StorageError> {
        let Some(point) = store.statement_point(merchant)? else {
            // Nothing written yet, so nothing may be stored.
            let stray = store.statements(
                merchant,
                Date::from_days(i32::MIN),
                Date::from_days(i32::MAX),
                1,
            )?;
            return Ok(Verdict {
                ok: stray.is_empty(),
                first_bad: stray.first().map(|s| s.date),
            });
        };
        let Some(last) = point.last_date() else {
            return Ok(Verdict {
                ok: true,
                first_bad: None,
            });
        };
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(merchant).cloned());
        let mut recomputed = cached.unwrap_or_else(|| Recomputed {
            chain: Chain::resume(ChainPoint::start(*merchant)),
            hashes: Vec::new(),
            broken_at: None,
        });
        recompute_through(store, merchant, last, &mut recomputed)?;
        let verdict = compare(store, merchant, last, &recomputed)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(*merchant, recomputed);
        }
        Ok(verdict)
    }
}

/// Runs the chain over the ledger until every day through `last` is closed.
fn recompute_through(
    store: &Store,
    merchant: &UserId,
    last: Date,
    r: &mut Recomputed,
) -> Result<(), StorageError> {
    let done = |r: &Recomputed| r.hashes.last().is_some_and(|(d, _)| *d >= last);
    let mut out = Vec::new();
    while r.broken_at.is_none() && !done(r) {
        let batch = store.ledger(merchant, r.chain.last_posting() + 1, READ_BATCH)?;
        if batch.is_empty() {
            r.chain.close_before(last.next(), usize::MAX, &mut out);
            r.hashes
                .extend(out.drain(..).map(|c| (c.statement.date, c.statement.hash)));
            break;
        }
        for transfer in &batch {
            if let Err(e) = r.chain.feed(transfer, &mut out) {
                tracing::warn!(%merchant, problem = %e, "verify: the ledger refuses a transfer");
                let day = r.chain.next_date().unwrap_or(last);
                r.broken_at = Some(day);
                break;
            }
            if out.last().is_some_and(|c| c.statement.date >= last) {
                break;
            }
        }
        r.hashes
            .extend(out.drain(..).map(|c| (c.statement.date, c.statement.hash)));
    }
    Ok(())
}

/// Compares every stored statement through `last` with the recomputation:
/// the same days, each with the recomputed hash and a hash that matches
/// its own fields. The first day that differs is the verdict.
fn compare(
    store: &Store,
    merchant: &UserId,
    last: Date,
    r: &Recomputed,
) -> Result<Verdict, StorageError> {
    let bad = |date: Date| {
        Ok(Verdict {
            ok: false,
            first_bad: Some(date),
        })
    };
    let expected: Vec<(Date, [u8; 32])> = r
        .hashes
        .iter()
        .take_while(|(d, _)| *d <= last)
        .copied()
        .collect();
    // Stored days before the ledger's first day have no business there.
    let first = expected.first().map_or(last.next(), |(d, _)| *d);
    if let Some(stray) = store
        .statements(merchant, Date::from_days(i32::MIN), first.prev(), 1)?
        .first()
    {
        return bad(stray.date);
    }
    for chunk in expected.chunks(VERIFY_PAGE) {
        let (Some((from, _)), Some((to, _))) = (chunk.first(), chunk.last()) else {
            continue;
        };
        let stored = store.statements(merchant, *from, *to, VERIFY_PAGE)?;
        let mut stored = stored.iter();
        for (date, hash) in chunk {
            let Some(s) = stored.next() else {
                return bad(*date);
            };
            if s.date != *date || s.hash != *hash || !s.hash_ok() {
                return bad((*date).min(s.date));
            }
        }
    }
    if let Some(day) = r.broken_at.filter(|d| *d <= last) {
        return bad(day);
    }
    // Stored days past what the ledger gives.
    let after = expected.last().map_or(first, |(d, _)| d.next());
    if let Some(extra) = store.statements(merchant, after, last, 1)?.first() {
        return bad(extra.date);
    }
    Ok(Verdict {
        ok: true,
        first_bad: None,
    })
}
