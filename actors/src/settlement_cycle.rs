//! The settlement cycle (SPEC §14): at each tick it asks every merchant
//! with a settlement account to sweep its `available` above its reserve
//! into a settlement (`WalletHandle::create_settlement`), a bounded number
//! of wallets at a time. Merchants without an account are skipped, so are
//! suspended ones (or those under a suspended user: their money stays put
//! until they are reactivated, or an admin settles on demand), and those
//! with nothing (or less than 1.00) above their reserve.
//!
//! A merchant whose previous settlement is still pending is swept again:
//! that settlement's money is already in `held`, so the new one takes only
//! what was credited since; each settlement settles on its own. Ticks that
//! fall while a sweep is still running are skipped, not queued.
//!
//! Schedule: every N seconds (`--settlement-interval-secs N`), at each
//! 00:00 UTC (the default), or never (`0`).

use crate::{Directory, WalletHandle};
use domain::{Rejection, Role, Timestamp, UserId};
use futures_util::stream::{self, StreamExt};
use std::time::Duration;

/// When the cycle runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SettlementSchedule {
    /// Never (tests and tools that drive settlements by hand).
    #[default]
    Off,
    /// At every 00:00 UTC.
    DailyUtcMidnight,
    /// Every so many seconds (> 0).
    EverySecs(u64),
}

impl SettlementSchedule {
    /// From `--settlement-interval-secs`: unset is daily, 0 is off.
    pub fn from_interval_secs(secs: Option<u64>) -> SettlementSchedule {
        match secs {
            None => SettlementSchedule::DailyUtcMidnight,
            Some(0) => SettlementSchedule::Off,
            Some(n) => SettlementSchedule::EverySecs(n),
        }
    }

    /// How long from `now_ms` (unix ms) to the next tick; `None` when off.
    pub fn next_in(self, now_ms: i64) -> Option<Duration> {
        const DAY_MS: i64 = 86_400_000;
        match self {
            SettlementSchedule::Off => None,
            SettlementSchedule::EverySecs(n) => Some(Duration::from_secs(n)),
            SettlementSchedule::DailyUtcMidnight => {
                let left = DAY_MS - now_ms.rem_euclid(DAY_MS);
                Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
            }
        }
    }
}

/// Most wallets swept at once.
pub const SWEEP_CONCURRENCY: usize = 8;

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub created: usize,
    /// Nothing above the reserve.
    pub nothing: usize,
    pub failed: usize,
}

/// Sweeps every merchant with a settlement account once.
pub async fn sweep(wallets: &WalletHandle, directory: &Directory) -> SweepReport {
    let merchants: Vec<UserId> = directory
        .merchants()
        .into_iter()
        .filter(|id| {
            directory.get(id).is_some_and(|u| {
                u.role == Role::Merchant
                    && u.settlement_account.is_some()
                    && !directory.is_blocked(&u)
            })
        })
        .collect();
    let results: Vec<Result<domain::Settlement, Rejection>> = stream::iter(merchants)
        .map(|merchant| async move { wallets.create_settlement(merchant).await })
        .buffer_unordered(SWEEP_CONCURRENCY)
        .collect()
        .await;
    let mut report = SweepReport::default();
    for result in results {
        match result {
            Ok(_) => report.created += 1,
            Err(Rejection::InsufficientBalance) => report.nothing += 1,
            Err(rejection) => {
                tracing::warn!(%rejection, "a settlement sweep failed");
                report.failed += 1;
            }
        }
    }
    report
}

/// Runs the cycle until aborted (the task is aborted at shutdown).
pub async fn run(schedule: SettlementSchedule, wallets: WalletHandle, directory: Directory) {
    loop {
        let Some(wait) = schedule.next_in(Timestamp::now().unix_ms()) else {
            return;
        };
        tokio::time::sleep(wait).await;
        let report = sweep(&wallets, &directory).await;
        tracing::info!(
            created = report.created,
            nothing = report.nothing,
            failed = report.failed,
            "settlement cycle"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(
            SettlementSchedule::from_interval_secs(None),
            SettlementSchedule::DailyUtcMidnight
        );
        assert_eq!(
            SettlementSchedule::from_interval_secs(Some(0)),
            SettlementSchedule::Off
        );
        assert_eq!(SettlementSchedule::Off.next_in(0), None);
        assert_eq!(
            SettlementSchedule::EverySecs(5).next_in(123),
            Some(Duration::from_secs(5))
        );
        // 2026-12-02T23:59:59.000Z → one second to midnight.
        let almost = 1_796_255_999_000;
        assert_eq!(
            SettlementSchedule::DailyUtcMidnight.next_in(almost),
            Some(Duration::from_secs(1))
        );
        // At midnight exactly: the next one, a day later.
        assert_eq!(
            SettlementSchedule::DailyUtcMidnight.next_in(almost + 1_000),
            Some(Duration::from_secs(86_400))
        );
    }
}
