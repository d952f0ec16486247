//! The live ledger check. Every `ledger_audit_interval_ms` it verifies, for
//! every merchant wallet, that replaying the transfers it posted gives back
//! its balances and postings (SPEC §11): numbering without gaps, every
//! after-balance, the wallet's shares of all accounts summing to zero; and
//! across wallets, that every account kind's balances sum to zero. The
//! verdict is `tijori_ledger_audit_ok`. It is incremental: it keeps each
//! wallet's replayed books and reads only the transfers posted since, so a
//! run costs what changed, not all history. Transfers beyond the wallet
//! row's `last_posting` are left for the next run (they belong to a write
//! the wallet row read here did not include yet).

use crate::Directory;
use domain::metric_names as names;
use domain::{AccountKind, Currency, Timestamp, UserId, Wallet};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage::Store;

/// The verdict of the last run.
#[derive(Debug, Default)]
pub struct AuditStatus {
    pub ok: AtomicBool,
    pub runs: AtomicU64,
    pub wallets_checked: AtomicU64,
    pub failures: AtomicU64,
    /// Description of the last disagreement found, if any.
    pub last_failure: Mutex<Option<String>>,
}

pub struct Auditor {
    store: Store,
    directory: Directory,
    /// Each wallet's books as replayed from its transfers so far.
    checked: HashMap<UserId, Wallet>,
    status: Arc<AuditStatus>,
}

impl Auditor {
    pub fn new(store: Store, directory: Directory) -> Auditor {
        let status = Arc::new(AuditStatus {
            ok: AtomicBool::new(true),
            ..AuditStatus::default()
        });
        Auditor {
            store,
            directory,
            checked: HashMap::new(),
            status,
        }
    }

    pub fn status(&self) -> Arc<AuditStatus> {
        self.status.clone()
    }

    /// Audits every wallet once; returns the disagreements found.
    pub fn run_once(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut wallets = 0u64;
        for merchant in self.directory.merchants() {
            match self.audit_wallet(&merchant) {
                Ok(true) => wallets += 1,
                Ok(false) => {}
                Err(problem) => {
                    wallets += 1;
                    problems.push(problem);
                }
            }
        }
        let total: i128 = self.account_totals().iter().sum();
        if total != 0 {
            problems.push(format!("all accounts sum to {total} paise, not 0"));
        }
        let ok = problems.is_empty();
        self.status.ok.store(ok, Ordering::Release);
        self.status.runs.fetch_add(1, Ordering::Relaxed);
        self.status
            .wallets_checked
            .store(wallets, Ordering::Relaxed);
        self.status
            .failures
            .fetch_add(problems.len() as u64, Ordering::Relaxed);
        if let Some(first) = problems.first() {
            tracing::error!(problem = %first, count = problems.len(), "ledger audit found unbalanced wallets");
            if let Ok(mut last) = self.status.last_failure.lock() {
                *last = Some(first.clone());
            }
        }
        metrics::gauge!(names::LEDGER_AUDIT_OK).set(if ok { 1.0 } else { 0.0 });
        metrics::gauge!(names::LEDGER_AUDIT_WALLETS).set(wallets as f64);
        metrics::counter!(names::LEDGER_AUDIT_FAILURES).increment(problems.len() as u64);
        metrics::gauge!(names::LEDGER_AUDIT_LAST_RUN)
            .set(Timestamp::now().unix_ms() as f64 / 1_000.0);
        problems
    }

    /// `Ok(true)` if a wallet was checked, `Ok(false)` if it has none yet.
    fn audit_wallet(&mut self, merchant: &UserId) -> Result<bool, String> {
        let fail = |why: String| format!("wallet {merchant}: {why}");
        let Some(wallet) = self
            .store
            .wallet(merchant, Currency::Inr)
            .map_err(|e| fail(e.to_string()))?
        else {
            return Ok(false);
        };
        wallet.check().map_err(fail)?;
        let mut books = match self.checked.get(merchant) {
            Some(books) => books.clone(),
            None => Wallet::new(*merchant, wallet.currency, wallet.updated_at),
        };
        if wallet.last_posting < books.last_posting {
            return Err(fail(format!(
                "last_posting went back from {} to {}",
                books.last_posting, wallet.last_posting
            )));
        }
        while books.last_posting < wallet.last_posting {
            let batch = self
                .store
                .ledger(merchant, books.last_posting + 1, 4_096)
                .map_err(|e| fail(e.to_string()))?;
            if batch.is_empty() {
                return Err(fail(format!(
                    "transfers end at posting {} but the wallet says {}",
                    books.last_posting, wallet.last_posting
                )));
            }
            for transfer in batch
                .iter()
                .take_while(|t| t.posting <= wallet.last_posting)
            {
                books.replay(transfer).map_err(fail)?;
            }
        }
        if !books.same_books(&wallet) {
            return Err(fail(format!(
                "balances {}/{} (posting {}) differ from its transfers' {}/{} (posting {})",
                wallet.available,
                wallet.held,
                wallet.last_posting,
                books.available,
                books.held,
                books.last_posting
            )));
        }
        self.checked.insert(*merchant, books);
        Ok(true)
    }

    /// Every account kind's balance summed over all audited wallets (the
    /// platform accounts' balances; the merchant kinds' totals). Each must
    /// be zero in sum.
    pub fn account_totals(&self) -> [i128; 7] {
        let mut totals = [0i128; 7];
        for books in self.checked.values() {
            for kind in AccountKind::ALL {
                totals[kind.index()] += books.balance(kind);
            }
        }
        totals
    }

    /// Runs forever (until the task is aborted), one audit per `interval`,
    /// each on a blocking thread since it reads storage synchronously.
    pub async fn run(mut self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match tokio::task::spawn_blocking(move || {
                self.run_once();
                self
            })
            .await
            {
                Ok(auditor) => self = auditor,
                Err(e) => {
                    tracing::error!(error = %e, "ledger audit task failed");
                    return;
                }
            }
        }
    }
}
