//! The live ledger check. Every `ledger_audit_interval_ms` it verifies, for
//! every merchant wallet, that `available + held` equals the sum of its
//! ledger and agrees with the last entry's balances, and publishes the
//! verdict as `tijori_ledger_audit_ok`. It is incremental: it remembers each
//! wallet's checked prefix (sequence and running sum) and reads only the
//! entries written since, so a run costs what changed, not all history.
//! Entries beyond the wallet row's `last_seq` are left for the next run
//! (they belong to a write the wallet row read here did not include yet).

use crate::Directory;
use domain::metric_names as names;
use domain::{Currency, EntryKind, Timestamp, UserId};
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

#[derive(Clone, Copy, Default)]
struct Checked {
    seq: u64,
    sum: i128,
}

pub struct Auditor {
    store: Store,
    directory: Directory,
    checked: HashMap<UserId, Checked>,
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
        let mut checked = self.checked.get(merchant).copied().unwrap_or_default();
        if wallet.last_seq < checked.seq {
            return Err(fail(format!(
                "last_seq went back from {} to {}",
                checked.seq, wallet.last_seq
            )));
        }
        let mut last = None;
        while checked.seq < wallet.last_seq {
            let batch = self
                .store
                .ledger(merchant, checked.seq + 1, 4_096)
                .map_err(|e| fail(e.to_string()))?;
            if batch.is_empty() {
                return Err(fail(format!(
                    "ledger ends at {} but the wallet says {}",
                    checked.seq, wallet.last_seq
                )));
            }
            for entry in batch.into_iter().take_while(|e| e.seq <= wallet.last_seq) {
                if entry.seq != checked.seq + 1 {
                    return Err(fail(format!(
                        "ledger skips from {} to {}",
                        checked.seq, entry.seq
                    )));
                }
                checked.sum += EntryKind::total_effect(entry.kind, entry.amount);
                checked.seq = entry.seq;
                let after = i128::from(entry.available_after.paise())
                    + i128::from(entry.held_after.paise());
                if after != checked.sum {
                    return Err(fail(format!(
                        "entry {} balances {after} != running sum {}",
                        entry.seq, checked.sum
                    )));
                }
                last = Some(entry);
            }
        }
        if checked.sum != wallet.total() {
            return Err(fail(format!(
                "available + held = {} but the ledger sums to {}",
                wallet.total(),
                checked.sum
            )));
        }
        if let Some(entry) = last {
            if (entry.available_after, entry.held_after) != (wallet.available, wallet.held) {
                return Err(fail(
                    "the last entry's balances differ from the wallet".into(),
                ));
            }
        }
        self.checked.insert(*merchant, checked);
        Ok(true)
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
