//! Recovery of the money core: what survives a restart, a crash and
//! passivation.
//!
//! - Reopen: after shutdown, close and reopen, every wallet, ledger entry,
//!   index listing, record and pending row is identical; a new core then
//!   settles the transactions that were still pending (SPEC §6: "a pending
//!   transaction survives a restart and is settled after it"), and the
//!   ledger audit holds.
//! - Supervision: a wallet actor that panics is restarted with its state
//!   reloaded from storage; callers queued behind the crash get an error,
//!   never a hang; nothing they asked for was written; later calls succeed;
//!   calls racing repeated crashes all complete and leave consistent books.
//! - Passivation: idle wallets are stopped, and a later call on one of them
//!   (a fresh incarnation) sees the same balance and works, also when calls
//!   race the passivation itself.

use crate::common;

use actors::CoreConfig;
use domain::{
    Currency, Payment, PaymentId, PaymentStatus, Payout, PayoutId, PayoutStatus, Rejection, UserId,
    Wallet,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use storage::keys::{IndexTag, UniqueKind};
use storage::{Durability, PendingItem, Space, Store};

const FAIL_VPA: &str = "fail@sandbox";
const REJECT_ACCOUNT: &str = "000000000000";
const GOOD_ACCOUNT: &str = "123456789012";
/// Long enough that what phase 2 creates is still pending at shutdown.
const SLOW_SETTLE_MS: u64 = 2_000;
const TAGS: [IndexTag; 4] = [
    IndexTag::PaymentsByMerchant,
    IndexTag::PaymentsByCreator,
    IndexTag::PayoutsByMerchant,
    IndexTag::PayoutsByCreator,
];

// ---------------------------------------------------------------- reopen --

/// Everything the store holds about some merchants, for before/after.
#[derive(Debug, PartialEq)]
struct Snapshot {
    wallets: Vec<Option<Wallet>>,
    ledgers: Vec<Vec<domain::Transfer>>,
    listings: Vec<Vec<[u8; 16]>>,
    payments: Vec<Option<Payment>>,
    payouts: Vec<Option<Payout>>,
    pending_rows: Vec<PendingItem>,
    counts: Vec<usize>,
}

fn snapshot(
    store: &Store,
    owners: &[UserId],
    payments: &[PaymentId],
    payouts: &[PayoutId],
) -> Snapshot {
    Snapshot {
        wallets: owners
            .iter()
            .map(|m| store.wallet(m, Currency::Inr).unwrap())
            .collect(),
        ledgers: owners
            .iter()
            .map(|m| store.ledger(m, 1, usize::MAX).unwrap())
            .collect(),
        listings: owners
            .iter()
            .flat_map(|o| TAGS.iter().map(move |t| common::index_ids(store, *t, o)))
            .collect(),
        payments: payments
            .iter()
            .map(|id| store.payment(id).unwrap())
            .collect(),
        payouts: payouts.iter().map(|id| store.payout(id).unwrap()).collect(),
        pending_rows: store.due_pending(i64::MAX, usize::MAX).unwrap(),
        counts: Space::DATA
            .iter()
            .map(|s| store.count(*s).unwrap())
            .collect(),
    }
}

/// The sandbox's verdicts (SPEC §6), with no random pay-in failures.
fn sandbox_payin(p: &Payment) -> PaymentStatus {
    if p.payer_vpa.as_deref() == Some(FAIL_VPA) {
        PaymentStatus::Failed
    } else {
        PaymentStatus::Completed
    }
}

fn sandbox_payout(po: &Payout) -> PayoutStatus {
    if po.beneficiary.account_number == REJECT_ACCOUNT {
        PayoutStatus::Rejected
    } else {
        PayoutStatus::Processed
    }
}

/// What a merchant's wallet must be, from its records alone:
/// [available, held, pending_payins, total_payins, total_payouts, total_fees, last_seq].
fn wallet_from_records(payments: &[Payment], payouts: &[Payout]) -> [u64; 7] {
    let mut w = [0u64; 7];
    let mut total: i128 = 0;
    for p in payments {
        match p.status {
            PaymentStatus::Pending => w[2] += p.amount.paise(),
            PaymentStatus::Completed => {
                total += i128::from(p.net_amount.paise());
                w[3] += p.amount.paise();
                w[5] += p.fee.paise();
                // payin_credit touches the merchant; payin_fee does not.
                w[6] += u64::from(p.net_amount.paise() > 0);
            }
            PaymentStatus::Failed => {}
        }
    }
    for po in payouts {
        let hold = po.amount.paise() + po.fee.paise();
        w[6] += 1;
        match po.status {
            PayoutStatus::Pending => w[1] += hold,
            PayoutStatus::Processed => {
                total -= i128::from(hold);
                w[4] += po.amount.paise();
                w[5] += po.fee.paise();
                // payout_settle, and payout_fee when there is a fee.
                w[6] += 1 + u64::from(po.fee.paise() > 0);
            }
            PayoutStatus::Rejected => w[6] += 1,
            PayoutStatus::Queued | PayoutStatus::Cancelled | PayoutStatus::Reversed => {
                panic!("this test makes no {} payout", po.status.as_str())
            }
        }
    }
    w[0] = u64::try_from(total).unwrap() - w[1];
    w
}

fn all_settled(store: &Store, payments: &[PaymentId], payouts: &[PayoutId]) -> bool {
    payments
        .iter()
        .all(|id| store.payment(id).unwrap().unwrap().status != PaymentStatus::Pending)
        && payouts
            .iter()
            .all(|id| store.payout(id).unwrap().unwrap().status != PayoutStatus::Pending)
        && store.pending_count().unwrap() == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_everything_and_settles_what_was_pending() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Sync);
    let mut merchants = Vec::new();
    for (bps, fee) in [(0, 0), (250, 1_000), (199, 500)] {
        merchants.push(common::merchant(&store, bps, fee).await);
    }
    // Some records are created by another user (an api_user of the
    // merchant), so that creator listings differ from merchant listings.
    let creator = UserId::new();
    let mut owners = merchants.clone();
    owners.push(creator);
    let (mut payments, mut payouts) = (Vec::new(), Vec::new());

    // Phase 1: money arrives and leaves through a fast sandbox, all settled.
    let core = common::start(&store, common::config(20)).await;
    for (i, m) in merchants.iter().enumerate() {
        for k in 0..4u64 {
            let by = if k == 1 { creator } else { *m };
            let mut new = common::payin(format!("a-{k}"), 100_000 + 10_000 * k, by);
            if k == 3 {
                new.payer_vpa = Some(FAIL_VPA.into());
            }
            payments.push(
                core.wallets()
                    .create_payin(*m, new)
                    .await
                    .unwrap()
                    .record
                    .id,
            );
        }
        assert!(
            common::eventually(Duration::from_secs(10), || all_settled(
                &store,
                &payments,
                &[]
            ))
            .await,
            "phase 1 pay-ins of merchant {i} were not settled in 10 s"
        );
        for (amount, account) in [(20_000, GOOD_ACCOUNT), (10_000, REJECT_ACCOUNT)] {
            let new = common::payout(amount, account, *m);
            payouts.push(
                core.wallets()
                    .create_payout(*m, new)
                    .await
                    .unwrap()
                    .record
                    .id,
            );
        }
    }
    assert!(
        common::eventually(Duration::from_secs(10), || all_settled(
            &store, &payments, &payouts
        ))
        .await,
        "phase 1 was not settled in 10 s"
    );
    core.shutdown().await;

    // Phase 2: a slow sandbox; shut down before it settles anything.
    let core = common::start(&store, common::config(SLOW_SETTLE_MS)).await;
    let mut manual = None;
    for m in &merchants {
        for k in 0..3u64 {
            let by = if k == 0 { creator } else { *m };
            let mut new = common::payin(format!("b-{k}"), 50_000 + k, by);
            if k == 2 {
                new.payer_vpa = Some(FAIL_VPA.into());
            }
            payments.push(
                core.wallets()
                    .create_payin(*m, new)
                    .await
                    .unwrap()
                    .record
                    .id,
            );
        }
        for (amount, account) in [(5_000, GOOD_ACCOUNT), (6_000, REJECT_ACCOUNT)] {
            let mut new = common::payout(amount, account, *m);
            new.reference_id = Some(format!("ref-{amount}"));
            payouts.push(
                core.wallets()
                    .create_payout(*m, new)
                    .await
                    .unwrap()
                    .record
                    .id,
            );
        }
        if manual.is_none() {
            // Settled by hand: its pending row stays for the sandbox to find
            // already settled after the restart.
            let id = core
                .wallets()
                .create_payin(*m, common::payin("b-manual", 70_000, *m))
                .await
                .unwrap()
                .record
                .id;
            core.wallets()
                .settle_payin(*m, id, PaymentStatus::Completed, None)
                .await
                .unwrap();
            payments.push(id);
            manual = Some(id);
        }
    }
    core.shutdown().await;
    store.close();
    let before = snapshot(&store, &owners, &payments, &payouts);
    drop(store);

    let still_pending_payins: Vec<&Payment> = before
        .payments
        .iter()
        .flatten()
        .filter(|p| p.status == PaymentStatus::Pending)
        .collect();
    let still_pending_payouts: Vec<&Payout> = before
        .payouts
        .iter()
        .flatten()
        .filter(|po| po.status == PayoutStatus::Pending)
        .collect();
    assert!(
        !still_pending_payins.is_empty() && !still_pending_payouts.is_empty(),
        "nothing was pending at shutdown ({SLOW_SETTLE_MS} ms was not enough?)"
    );
    assert!(
        before.payments.iter().all(Option::is_some),
        "a pay-in is missing before reopen"
    );
    assert!(
        before.payouts.iter().all(Option::is_some),
        "a payout is missing before reopen"
    );
    let rows: Vec<[u8; 16]> = before.pending_rows.iter().map(|r| r.record).collect();
    for id in still_pending_payins.iter().map(|p| p.id.as_bytes()) {
        assert!(rows.contains(id), "a pending pay-in has no pending row");
    }
    for id in still_pending_payouts.iter().map(|po| po.id.as_bytes()) {
        assert!(rows.contains(id), "a pending payout has no pending row");
    }

    // Reopen: everything is exactly as it was.
    let store = common::reopen(dir.path(), Durability::Sync).await;
    let after = snapshot(&store, &owners, &payments, &payouts);
    assert_eq!(
        after.wallets, before.wallets,
        "wallets changed across reopen"
    );
    assert_eq!(
        after.ledgers, before.ledgers,
        "ledgers changed across reopen"
    );
    assert_eq!(
        after.listings, before.listings,
        "index listings changed across reopen"
    );
    assert_eq!(
        after.payments, before.payments,
        "pay-ins changed across reopen"
    );
    assert_eq!(
        after.payouts, before.payouts,
        "payouts changed across reopen"
    );
    assert_eq!(
        after.pending_rows, before.pending_rows,
        "pending rows changed across reopen"
    );
    assert_eq!(
        after.counts, before.counts,
        "record counts changed across reopen"
    );
    for m in &merchants {
        common::audit(&store, m);
    }

    // A new core settles what was pending, from storage alone.
    let core = common::start(&store, common::config(20)).await;
    assert!(
        common::eventually(Duration::from_secs(15), || all_settled(
            &store, &payments, &payouts
        ))
        .await,
        "pending transactions were not settled within 15 s of the reopen"
    );
    for p in &still_pending_payins {
        let now = store.payment(&p.id).unwrap().unwrap();
        assert_eq!(now.status, sandbox_payin(p), "pay-in {} after reopen", p.id);
    }
    for po in &still_pending_payouts {
        let now = store.payout(&po.id).unwrap().unwrap();
        assert_eq!(
            now.status,
            sandbox_payout(po),
            "payout {} after reopen",
            po.id
        );
    }
    let manual = manual.unwrap();
    assert_eq!(
        store.payment(&manual).unwrap().unwrap().status,
        PaymentStatus::Completed,
        "the sandbox re-settled a manually settled pay-in"
    );
    for (i, m) in merchants.iter().enumerate() {
        let mine_in: Vec<Payment> = payments
            .iter()
            .map(|id| store.payment(id).unwrap().unwrap())
            .filter(|p| p.merchant_id == *m)
            .collect();
        let mine_out: Vec<Payout> = payouts
            .iter()
            .map(|id| store.payout(id).unwrap().unwrap())
            .filter(|po| po.merchant_id == *m)
            .collect();
        let wallet = common::audit(&store, m);
        assert_eq!(
            common::numbers(&wallet),
            wallet_from_records(&mine_in, &mine_out),
            "merchant {i}: wallet against its records after settlement"
        );
        assert_eq!(
            core.wallets().balance(*m).await.unwrap(),
            wallet,
            "merchant {i}: live wallet differs from storage"
        );
        // The ledger only grew: what was there before is unchanged.
        let ledger = store.ledger(m, 1, usize::MAX).unwrap();
        assert!(
            ledger.starts_with(&before.ledgers[i]),
            "merchant {i}: ledger entries were rewritten"
        );
        assert!(
            ledger.len() > before.ledgers[i].len(),
            "merchant {i}: nothing settled"
        );
    }
    core.shutdown().await;
    store.close();
}

// ----------------------------------------------------------- supervision --

/// A config in which the sandbox never settles (an hour's delay).
fn still() -> CoreConfig {
    common::config(3_600_000)
}

const PAYOUT_FEE: u64 = 500;

/// The injected panics would make the default hook print a backtrace when
/// `RUST_BACKTRACE` is set, which takes long enough (tens of ms in a debug
/// build) to let the store apply every queued write before the supervisor
/// restarts the wallet, hiding exactly the race these tests are after (a
/// restarted wallet loading state older than its predecessor's writes). So
/// injected panics print one line, without a backtrace. The hook is the whole
/// process's, shared with every other test in this binary: any other panic (a
/// failing assertion elsewhere) still goes to the default hook.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied());
            if message.is_some_and(|m| m.starts_with("fault injection:")) {
                eprintln!("{info}");
            } else {
                default(info);
            }
        }));
    });
}

/// Checks the payouts a racing run asked for: every acknowledged one is
/// stored and holds its reference, every refused one left no trace. Returns
/// the total held by the acknowledged ones.
fn check_outcomes(
    store: &Store,
    m: &UserId,
    outcomes: &[(String, Result<PayoutId, Rejection>)],
) -> u64 {
    let mut held = 0;
    for (reference, outcome) in outcomes {
        let taken = store.unique(m, UniqueKind::ReferenceId, reference).unwrap();
        match outcome {
            Ok(id) => {
                assert_eq!(
                    taken,
                    Some(*id.as_bytes()),
                    "{reference}: acknowledged, not stored"
                );
                let po = store
                    .payout(id)
                    .unwrap()
                    .expect("acknowledged payout stored");
                assert_eq!(po.status, PayoutStatus::Pending);
                held += po.amount.paise() + po.fee.paise();
            }
            Err(Rejection::ServiceUnavailable) => {
                assert_eq!(taken, None, "{reference}: refused, yet written");
            }
            Err(other) => panic!("{reference}: unexpected refusal {other}"),
        }
    }
    held
}

/// Funds a merchant's wallet with one completed pay-in.
async fn funded(store: &Store, wallets: &actors::WalletHandle, paise: u64) -> UserId {
    let m = common::merchant(store, 0, PAYOUT_FEE).await;
    let p = wallets
        .create_payin(m, common::payin("funding", paise, m))
        .await
        .unwrap()
        .record;
    wallets
        .settle_payin(m, p.id, PaymentStatus::Completed, None)
        .await
        .unwrap();
    m
}

// current_thread: spawned tasks first run in spawn order, so the payouts
// spawned after the crash are queued behind it in the wallet's mailbox.
#[tokio::test]
async fn crashed_wallet_restarts_and_callers_behind_the_crash_get_errors() {
    quiet_panics();
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Sync);
    let core = common::start(&store, still()).await;
    let wallets = core.wallets().clone();
    let m = funded(&store, &wallets, 1_000_000).await;
    let start = wallets.balance(m).await.unwrap();
    assert_eq!(start.available.paise(), 1_000_000);

    const BEFORE: usize = 20;
    const AFTER: usize = 20;
    let mut calls = tokio::task::JoinSet::new();
    let mut crash = None;
    for i in 0..BEFORE + AFTER {
        if i == BEFORE {
            let w = wallets.clone();
            crash = Some(tokio::spawn(async move { w.crash_for_test(m).await }));
        }
        let w = wallets.clone();
        calls.spawn(async move {
            let reference = format!("r-{i}");
            let mut new = common::payout(100, GOOD_ACCOUNT, m);
            new.reference_id = Some(reference.clone());
            let outcome = w.create_payout(m, new).await.map(|c| c.record.id);
            (i, reference, outcome)
        });
    }
    let mut outcomes = tokio::time::timeout(Duration::from_secs(30), calls.join_all())
        .await
        .expect("callers racing a crash hung");
    outcomes.sort_by_key(|(i, _, _)| *i);
    tokio::time::timeout(Duration::from_secs(5), crash.unwrap())
        .await
        .expect("crash_for_test hung")
        .unwrap()
        .expect("the wallet was alive to be crashed");

    for (i, reference, outcome) in &outcomes {
        if *i < BEFORE {
            assert!(
                outcome.is_ok(),
                "{reference}, queued before the crash: {outcome:?}"
            );
        } else {
            assert_eq!(
                outcome.as_ref().map(|_| ()),
                Err(&Rejection::ServiceUnavailable),
                "{reference}, queued behind the crash"
            );
        }
    }
    let outcomes: Vec<(String, Result<PayoutId, Rejection>)> =
        outcomes.into_iter().map(|(_, r, o)| (r, o)).collect();
    let held = check_outcomes(&store, &m, &outcomes);
    assert_eq!(held, BEFORE as u64 * (100 + PAYOUT_FEE));

    // The restarted wallet holds exactly what storage holds.
    let live = tokio::time::timeout(Duration::from_secs(5), wallets.balance(m))
        .await
        .expect("balance after a crash hung")
        .expect("the wallet did not come back");
    let stored = common::audit(&store, &m);
    assert_eq!(live, stored, "restarted wallet differs from storage");
    assert_eq!(
        (live.available.paise(), live.held.paise()),
        (1_000_000 - held, held),
        "restarted wallet against the acknowledged payouts"
    );

    // And it keeps working: settle every acknowledged payout, pay out again.
    for (_, outcome) in &outcomes {
        if let Ok(id) = outcome {
            wallets
                .settle_payout(m, *id, PayoutStatus::Processed, None)
                .await
                .unwrap();
        }
    }
    let next = wallets
        .create_payout(m, common::payout(1_000, GOOD_ACCOUNT, m))
        .await
        .unwrap();
    assert_eq!(next.record.status, PayoutStatus::Pending);
    let live = wallets.balance(m).await.unwrap();
    assert_eq!(live, common::audit(&store, &m));
    let expected_held = 1_000 + PAYOUT_FEE;
    assert_eq!(
        (live.available.paise(), live.held.paise()),
        (1_000_000 - held - expected_held, expected_held)
    );
    core.shutdown().await;
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_racing_repeated_crashes_all_complete() {
    quiet_panics();
    const CALLERS: usize = 8;
    const CALLS_EACH: usize = 60;
    const CRASHES: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Sync);
    let core = common::start(&store, still()).await;
    let wallets = core.wallets().clone();
    let m = funded(&store, &wallets, 10_000_000).await;

    let mut callers = tokio::task::JoinSet::new();
    for c in 0..CALLERS {
        let w = wallets.clone();
        callers.spawn(async move {
            let mut outcomes = Vec::new();
            for k in 0..CALLS_EACH {
                if k % 3 == 0 {
                    // Reads race the crash too; they must answer or fail.
                    match w.balance(m).await {
                        Ok(_) | Err(Rejection::ServiceUnavailable) => {}
                        Err(other) => panic!("balance: unexpected {other}"),
                    }
                    continue;
                }
                let reference = format!("c{c}-{k}");
                let mut new = common::payout(100, GOOD_ACCOUNT, m);
                new.reference_id = Some(reference.clone());
                let outcome = w.create_payout(m, new).await.map(|c| c.record.id);
                outcomes.push((reference, outcome));
            }
            outcomes
        });
    }
    let crasher = {
        let w = wallets.clone();
        tokio::spawn(async move {
            let mut crashed = 0;
            for _ in 0..2_000 {
                if crashed == CRASHES {
                    break;
                }
                if w.crash_for_test(m).await.is_ok() {
                    crashed += 1;
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            crashed
        })
    };
    let outcomes: Vec<(String, Result<PayoutId, Rejection>)> =
        tokio::time::timeout(Duration::from_secs(60), callers.join_all())
            .await
            .expect("callers racing crashes hung")
            .into_iter()
            .flatten()
            .collect();
    let crashed = tokio::time::timeout(Duration::from_secs(30), crasher)
        .await
        .expect("crasher hung")
        .unwrap();
    assert_eq!(
        crashed, CRASHES,
        "the wallet was not crashed {CRASHES} times"
    );

    let held = check_outcomes(&store, &m, &outcomes);
    let live = tokio::time::timeout(Duration::from_secs(5), wallets.balance(m))
        .await
        .expect("balance after crashes hung")
        .expect("the wallet did not come back");
    assert_eq!(
        live,
        common::audit(&store, &m),
        "wallet differs from storage"
    );
    assert_eq!(
        (live.available.paise(), live.held.paise()),
        (10_000_000 - held, held),
        "wallet against the acknowledged payouts"
    );
    let acknowledged = outcomes.iter().filter(|(_, o)| o.is_ok()).count();
    eprintln!(
        "{} payouts racing {CRASHES} crashes: {acknowledged} acknowledged, {} refused",
        outcomes.len(),
        outcomes.len() - acknowledged
    );
    core.shutdown().await;
    store.close();
}

// ------------------------------------------------------------ passivation --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_wallets_passivate_and_come_back_with_the_same_balance() {
    const MERCHANTS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Buffered);
    let config = CoreConfig {
        wallet_idle_max_ms: 200,
        ..still()
    };
    let core = common::start(&store, config).await;
    let wallets = core.wallets().clone();
    let mut merchants = Vec::new();
    let mut holds = Vec::new();
    for i in 0..MERCHANTS as u64 {
        let m = funded(&store, &wallets, 100_000 + i).await;
        let po = wallets
            .create_payout(m, common::payout(1_000 + i, GOOD_ACCOUNT, m))
            .await
            .unwrap()
            .record;
        merchants.push(m);
        holds.push(po.id);
    }
    let mut balances = Vec::new();
    for m in &merchants {
        balances.push(wallets.balance(*m).await.unwrap());
    }
    assert_eq!(
        wallets.active_wallets(),
        MERCHANTS,
        "wallets not running after use"
    );

    assert!(
        common::eventually(Duration::from_secs(5), || wallets.active_wallets() == 0).await,
        "idle wallets were not passivated within 5 s ({} still active)",
        wallets.active_wallets()
    );
    for (i, m) in merchants.iter().enumerate() {
        let live = wallets.balance(*m).await.unwrap();
        assert_eq!(
            live, balances[i],
            "merchant {i}: balance changed across passivation"
        );
        assert_eq!(
            Some(&live),
            store.wallet(m, Currency::Inr).unwrap().as_ref(),
            "merchant {i}: live wallet differs from storage"
        );
    }
    assert!(
        wallets.active_wallets() > 0,
        "calls did not bring wallets back"
    );

    // A write on a passivated wallet works and moves the money it should.
    assert!(
        common::eventually(Duration::from_secs(5), || wallets.active_wallets() == 0).await,
        "wallets were not passivated a second time"
    );
    let m = merchants[0];
    let po = wallets
        .settle_payout(m, holds[0], PayoutStatus::Processed, None)
        .await
        .unwrap();
    let live = wallets.balance(m).await.unwrap();
    let hold = po.amount.paise() + po.fee.paise();
    assert_eq!(
        (live.available.paise(), live.held.paise()),
        (
            balances[0].available.paise(),
            balances[0].held.paise() - hold
        )
    );
    assert_eq!(live, common::audit(&store, &m));
    core.shutdown().await;
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_racing_passivation_never_fail() {
    const SEED: u64 = 0x1D1E;
    const WALLETS: usize = 16;
    const CALLS_EACH: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Buffered);
    // Idle checks every 5 ms: calls after pauses of 5-20 ms land around
    // passivations, on 16 wallets at once to hit the window often.
    let config = CoreConfig {
        wallet_idle_max_ms: 10,
        ..still()
    };
    let core = common::start(&store, config).await;
    let wallets = core.wallets().clone();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WALLETS {
        let m = funded(&store, &wallets, 10_000_000).await;
        let wallets = wallets.clone();
        tasks.spawn(async move {
            let mut rng = SmallRng::seed_from_u64(SEED + w as u64);
            let (mut held, mut passivated_seen) = (0u64, 0usize);
            for k in 0..CALLS_EACH {
                let ctx = format!("seed {SEED:#x}, wallet {w}, call {k}");
                tokio::time::sleep(Duration::from_millis(rng.random_range(5..=20))).await;
                if wallets.active_wallets() < WALLETS {
                    passivated_seen += 1;
                }
                let amount = rng.random_range(100..=1_000u64);
                let po = wallets
                    .create_payout(m, common::payout(amount, GOOD_ACCOUNT, m))
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: payout refused: {e}"));
                held += po.record.amount.paise() + po.record.fee.paise();
                let live = wallets
                    .balance(m)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: balance refused: {e}"));
                assert_eq!(live.held.paise(), held, "{ctx}");
            }
            (m, held, passivated_seen)
        });
    }
    let results = tokio::time::timeout(Duration::from_secs(60), tasks.join_all())
        .await
        .expect("calls racing passivation hung");
    let passivated_seen: usize = results.iter().map(|r| r.2).sum();
    assert!(
        passivated_seen > 0,
        "seed {SEED:#x}: no wallet was ever passivated between calls"
    );
    eprintln!(
        "{} calls on {WALLETS} wallets; {passivated_seen} made while some wallet was passivated",
        WALLETS * CALLS_EACH
    );
    for (m, held, _) in results {
        let live = wallets.balance(m).await.unwrap();
        assert_eq!(live, common::audit(&store, &m));
        assert_eq!(
            (live.available.paise(), live.held.paise()),
            (10_000_000 - held, held),
            "seed {SEED:#x}: wallet {m}"
        );
    }
    core.shutdown().await;
    store.close();
}
