//! Many callers, one `WalletHandle`, real fsync.
//!
//! 64 tokio tasks × 500 operations over 20 wallets (multi-thread runtime,
//! 2 workers, `Durability::Sync`): pay-ins that the tasks then settle
//! themselves (completed or failed), payouts that hold money and are then
//! processed or rejected (some left pending, so holds remain), and payouts
//! too large for the balance. The sandbox's delay is an hour, so only the
//! tasks settle, and the final state is exactly the sum of what was
//! acknowledged. This proves:
//! - no deadlock or lost reply: the whole run finishes inside a timeout;
//! - the only refusal is `insufficient_balance`, and only for payouts;
//! - every wallet ends at exactly the sum of its acknowledged operations;
//! - every acknowledged operation is on disk: after shutdown, close and
//!   reopen, every acknowledged pay-in and payout is there with the status
//!   it was acknowledged with, the wallets are unchanged, and every wallet
//!   passes the full ledger audit.

use crate::common;

use actors::WalletHandle;
use domain::{Currency, PaymentId, PaymentStatus, PayoutId, PayoutStatus, Rejection, UserId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::time::Duration;
use storage::keys::IndexTag;
use storage::Durability;

const TASKS: usize = 64;
const OPS_PER_TASK: usize = 500;
const WALLETS: usize = 20;
const SEED: u64 = 0xC0C0_2026;
/// Far beyond what any wallet here accumulates, within the amount limit.
const HUGE_PAYOUT: u64 = 95_000_000;

#[derive(Clone, Copy)]
struct Merchant {
    id: UserId,
    payin_fee_bps: u32,
    payout_fee: u64,
}

/// An acknowledged pay-in, with the last status it was acknowledged in.
struct AckPayin {
    merchant: usize,
    id: PaymentId,
    amount: u64,
    fee: u64,
    status: PaymentStatus,
}

/// An acknowledged payout, with the last status it was acknowledged in.
struct AckPayout {
    merchant: usize,
    id: PayoutId,
    amount: u64,
    fee: u64,
    status: PayoutStatus,
}

#[derive(Default)]
struct TaskLog {
    payins: Vec<AckPayin>,
    payouts: Vec<AckPayout>,
    refused_for_balance: usize,
}

/// One caller: 500 random operations; it settles only what it created.
async fn caller(task: usize, wallets: WalletHandle, merchants: Vec<Merchant>) -> TaskLog {
    let mut rng = SmallRng::seed_from_u64(SEED ^ ((task as u64) << 16));
    let mut log = TaskLog::default();
    for op in 0..OPS_PER_TASK {
        let ctx = format!("seed {SEED:#x}, task {task}, op {op}");
        let w = rng.random_range(0..WALLETS);
        let m = merchants[w];
        let pending_payins: Vec<usize> = (0..log.payins.len())
            .filter(|&i| log.payins[i].status == PaymentStatus::Pending)
            .collect();
        let pending_payouts: Vec<usize> = (0..log.payouts.len())
            .filter(|&i| log.payouts[i].status == PayoutStatus::Pending)
            .collect();
        let roll = rng.random_range(0..100);
        if (35..60).contains(&roll) && !pending_payins.is_empty() {
            let i = pending_payins[rng.random_range(0..pending_payins.len())];
            let to = if rng.random_bool(0.85) {
                PaymentStatus::Completed
            } else {
                PaymentStatus::Failed
            };
            let p = &mut log.payins[i];
            let merchant = merchants[p.merchant].id;
            let settled = wallets
                .settle_payin(merchant, p.id, to, None)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: settling pay-in {}: {e}", p.id));
            assert_eq!(settled.status, to, "{ctx}");
            p.status = to;
        } else if (60..85).contains(&roll) {
            let amount = if rng.random_bool(0.15) {
                HUGE_PAYOUT
            } else {
                rng.random_range(100..=20_000u64)
            };
            let account = if rng.random_bool(0.1) {
                "000000000000"
            } else {
                "123456789012"
            };
            match wallets
                .create_payout(m.id, common::payout(amount, account, m.id))
                .await
            {
                Ok(created) => {
                    assert_eq!(created.record.fee.paise(), m.payout_fee, "{ctx}");
                    log.payouts.push(AckPayout {
                        merchant: w,
                        id: created.record.id,
                        amount,
                        fee: m.payout_fee,
                        status: PayoutStatus::Pending,
                    });
                }
                Err(Rejection::InsufficientBalance) => log.refused_for_balance += 1,
                Err(e) => panic!("{ctx}: payout refused: {e}"),
            }
        } else if roll >= 85 && !pending_payouts.is_empty() {
            let i = pending_payouts[rng.random_range(0..pending_payouts.len())];
            let to = if rng.random_bool(0.8) {
                PayoutStatus::Processed
            } else {
                PayoutStatus::Rejected
            };
            let po = &mut log.payouts[i];
            let merchant = merchants[po.merchant].id;
            let settled = wallets
                .settle_payout(merchant, po.id, to, None)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: settling payout {}: {e}", po.id));
            assert_eq!(settled.status, to, "{ctx}");
            po.status = to;
        } else {
            let amount = rng.random_range(100..=50_000u64);
            let order_id = format!("t{task}-o{op}");
            let created = wallets
                .create_payin(m.id, common::payin(order_id, amount, m.id))
                .await
                .unwrap_or_else(|e| panic!("{ctx}: pay-in refused: {e}"));
            let fee = common::payin_fee(amount, m.payin_fee_bps);
            assert_eq!(created.record.fee.paise(), fee, "{ctx}");
            log.payins.push(AckPayin {
                merchant: w,
                id: created.record.id,
                amount,
                fee,
                status: PaymentStatus::Pending,
            });
        }
        if op % 50 == 0 {
            // A read in the middle of the storm must never show a negative
            // or inconsistent wallet (Money cannot be negative; check the
            // actor answers at all and its total is sane).
            let live = wallets.balance(m.id).await.unwrap();
            assert!(live.total() >= 0, "{ctx}");
        }
    }
    log
}

/// What the acknowledged operations say each wallet must hold:
/// [available, held, pending_payins, total_payins, total_payouts, total_fees, last_seq].
fn expected_wallets(logs: &[TaskLog]) -> Vec<[u64; 7]> {
    let mut total = vec![0i128; WALLETS];
    let mut want = vec![[0u64; 7]; WALLETS];
    for log in logs {
        for p in &log.payins {
            let w = &mut want[p.merchant];
            match p.status {
                PaymentStatus::Pending => w[2] += p.amount,
                PaymentStatus::Completed => {
                    total[p.merchant] += i128::from(p.amount - p.fee);
                    w[3] += p.amount;
                    w[5] += p.fee;
                    // payin_credit touches the merchant; payin_fee does not.
                    w[6] += u64::from(p.amount > p.fee);
                }
                PaymentStatus::Failed => {}
            }
        }
        for po in &log.payouts {
            let w = &mut want[po.merchant];
            let hold = po.amount + po.fee;
            w[6] += 1; // the hold
            match po.status {
                PayoutStatus::Pending => w[1] += hold,
                PayoutStatus::Processed => {
                    total[po.merchant] -= i128::from(hold);
                    w[4] += po.amount;
                    w[5] += po.fee;
                    // payout_settle, and payout_fee when there is a fee.
                    w[6] += 1 + u64::from(po.fee > 0);
                }
                PayoutStatus::Rejected => w[6] += 1,
                PayoutStatus::Queued | PayoutStatus::Cancelled | PayoutStatus::Reversed => {
                    panic!("this test makes no {} payout", po.status.as_str())
                }
            }
        }
    }
    for (w, total) in want.iter_mut().zip(total) {
        let total = u64::try_from(total).expect("expected total is negative");
        w[0] = total.checked_sub(w[1]).expect("holds exceed the total");
    }
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_one_handle_with_fsync() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Sync);
    let core = common::start(&store, common::config(3_600_000)).await;
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut merchants = Vec::new();
    for _ in 0..WALLETS {
        let payin_fee_bps = rng.random_range(0..=500u32);
        let payout_fee = rng.random_range(0..=2_000u64);
        let id = common::merchant(&store, payin_fee_bps, payout_fee).await;
        merchants.push(Merchant {
            id,
            payin_fee_bps,
            payout_fee,
        });
    }

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        tasks.spawn(caller(task, core.wallets().clone(), merchants.clone()));
    }
    let logs = tokio::time::timeout(Duration::from_secs(120), async {
        let mut logs = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            logs.push(joined.unwrap_or_else(|e| panic!("seed {SEED:#x}: a caller failed: {e}")));
        }
        logs
    })
    .await
    .unwrap_or_else(|_| panic!("seed {SEED:#x}: callers did not finish in 120 s (deadlock?)"));
    let storm = started.elapsed();

    let acknowledged_payouts: usize = logs.iter().map(|l| l.payouts.len()).sum();
    let refused: usize = logs.iter().map(|l| l.refused_for_balance).sum();
    assert!(
        acknowledged_payouts > 0,
        "seed {SEED:#x}: no payout succeeded"
    );
    assert!(
        refused > 0,
        "seed {SEED:#x}: no payout was refused for balance"
    );

    let want = expected_wallets(&logs);
    for (w, m) in merchants.iter().enumerate() {
        let live = core.wallets().balance(m.id).await.unwrap();
        assert_eq!(
            common::numbers(&live),
            want[w],
            "seed {SEED:#x}: live wallet {w} against the acknowledged operations"
        );
    }
    assert!(
        want.iter().any(|w| w[1] > 0),
        "seed {SEED:#x}: no hold was left pending"
    );

    core.shutdown().await;
    store.close();
    drop(store);

    let store = common::reopen(dir.path(), Durability::Sync).await;
    let mut payments_per_merchant: HashMap<usize, usize> = HashMap::new();
    let mut payouts_per_merchant: HashMap<usize, usize> = HashMap::new();
    for log in &logs {
        for p in &log.payins {
            let stored = store
                .payment(&p.id)
                .unwrap()
                .unwrap_or_else(|| panic!("seed {SEED:#x}: acknowledged pay-in {} lost", p.id));
            assert_eq!(stored.status, p.status, "seed {SEED:#x}: pay-in {}", p.id);
            assert_eq!(stored.merchant_id, merchants[p.merchant].id);
            *payments_per_merchant.entry(p.merchant).or_default() += 1;
        }
        for po in &log.payouts {
            let stored = store
                .payout(&po.id)
                .unwrap()
                .unwrap_or_else(|| panic!("seed {SEED:#x}: acknowledged payout {} lost", po.id));
            assert_eq!(stored.status, po.status, "seed {SEED:#x}: payout {}", po.id);
            assert_eq!(stored.merchant_id, merchants[po.merchant].id);
            *payouts_per_merchant.entry(po.merchant).or_default() += 1;
        }
    }
    for (w, m) in merchants.iter().enumerate() {
        let wallet = common::audit(&store, &m.id);
        assert_eq!(
            common::numbers(&wallet),
            want[w],
            "seed {SEED:#x}: reopened wallet {w}"
        );
        assert_eq!(wallet.currency, Currency::Inr);
        // Nothing unacknowledged was written either: the listings hold
        // exactly the acknowledged records.
        assert_eq!(
            common::index_ids(&store, IndexTag::PaymentsByMerchant, &m.id).len(),
            payments_per_merchant.get(&w).copied().unwrap_or(0),
            "seed {SEED:#x}: pay-ins listed for wallet {w}"
        );
        assert_eq!(
            common::index_ids(&store, IndexTag::PayoutsByMerchant, &m.id).len(),
            payouts_per_merchant.get(&w).copied().unwrap_or(0),
            "seed {SEED:#x}: payouts listed for wallet {w}"
        );
    }
    store.close();
    eprintln!(
        "{TASKS} tasks x {OPS_PER_TASK} ops: storm {storm:?}, total {:?}; \
         {acknowledged_payouts} payouts acknowledged, {refused} refused for balance",
        started.elapsed()
    );
}
