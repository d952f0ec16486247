//! The daily statement writer and verifier (SPEC §15), driven by a manual
//! clock over ledgers written with chosen dates.

use crate::common;
use actors::statements::{
    ManualClock, RunReport, StatementConfig, StatementWriter, Verdict, Verifier,
};
use actors::Core;
use domain::statement::{Date, Statement, GENESIS_HASH};
use domain::{Currency, Money, Timestamp, Transfer, TransferKind, UserId, Wallet};
use std::sync::Arc;
use storage::{Durability, Store, WriteSet};

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn day(text: &str) -> Date {
    Date::parse(text).unwrap()
}

/// Posts transfers on `merchant`'s wallet as the wallet would, each dated
/// as given, and stores them with the wallet (one write set each).
struct Ledger {
    wallet: Wallet,
}

impl Ledger {
    fn new(merchant: UserId) -> Ledger {
        Ledger {
            wallet: Wallet::new(merchant, Currency::Inr, Timestamp::from_unix_ms(0)),
        }
    }

    async fn post(
        &mut self,
        store: &Store,
        kind: TransferKind,
        paise: u64,
        when: &str,
    ) -> Transfer {
        let mut t = self
            .wallet
            .post(kind, Money::from_paise(paise), "txn_test".into(), at(when))
            .unwrap();
        t.created_at = at(when);
        let mut writes = WriteSet::new();
        writes.put_transfer(&t);
        writes.put_wallet(&self.wallet);
        store.commit(writes).await.unwrap();
        t
    }
}

/// A started core (for its directory) whose own writer never runs.
async fn core(store: &Store) -> Core {
    let mut config = common::config(50);
    config.statements.interval_ms = 0;
    common::start(store, config).await
}

fn writer(
    store: &Store,
    core: &Core,
    clock: &Arc<ManualClock>,
    config: StatementConfig,
) -> StatementWriter {
    StatementWriter::new(
        store.clone(),
        core.directory().clone(),
        clock.clone(),
        config,
    )
}

fn all(store: &Store, merchant: &UserId) -> Vec<Statement> {
    store
        .statements(
            merchant,
            Date::from_days(0),
            Date::from_days(i32::MAX),
            usize::MAX,
        )
        .unwrap()
}

fn dates(statements: &[Statement]) -> Vec<String> {
    statements.iter().map(|s| s.date.to_string()).collect()
}

/// The ledger used by most tests: activity on the 20th and the 23rd.
async fn seed(store: &Store, merchant: UserId) -> Ledger {
    let mut ledger = Ledger::new(merchant);
    ledger
        .post(
            store,
            TransferKind::PayinCredit,
            98_000,
            "2026-11-20T09:00:00Z",
        )
        .await;
    ledger
        .post(store, TransferKind::PayinFee, 2_000, "2026-11-20T09:00:00Z")
        .await;
    ledger
        .post(
            store,
            TransferKind::PayinCredit,
            49_000,
            "2026-11-20T18:00:00Z",
        )
        .await;
    ledger
        .post(store, TransferKind::PayinFee, 1_000, "2026-11-20T18:00:00Z")
        .await;
    ledger
        .post(
            store,
            TransferKind::PayoutHold,
            10_500,
            "2026-11-20T23:59:59.999Z",
        )
        .await;
    ledger
        .post(
            store,
            TransferKind::PayoutSettle,
            10_000,
            "2026-11-23T00:00:00Z",
        )
        .await;
    ledger
        .post(
            store,
            TransferKind::PayoutFee,
            500,
            "2026-11-23T00:00:00.001Z",
        )
        .await;
    ledger
}

#[tokio::test]
async fn quiet_days_openings_totals_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Buffered);
    let merchant = common::merchant(&store, 0, 0).await;
    let core = core(&store).await;
    seed(&store, merchant).await;
    let clock = ManualClock::at(at("2026-11-25T00:00:05Z"));
    let mut w = writer(&store, &core, &clock, StatementConfig::default());
    let report = w.run_once().await;
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(report.written, 5);
    let s = all(&store, &merchant);
    assert_eq!(
        dates(&s),
        [
            "2026-11-20",
            "2026-11-21",
            "2026-11-22",
            "2026-11-23",
            "2026-11-24"
        ]
    );
    // The first day: opening zero, genesis prev_hash, its own totals by kind.
    assert_eq!(s[0].prev_hash, GENESIS_HASH);
    assert_eq!(
        (s[0].opening_available, s[0].opening_held),
        (Money::ZERO, Money::ZERO)
    );
    assert_eq!(
        s[0].totals,
        [
            (TransferKind::PayinCredit, 147_000),
            (TransferKind::PayoutHold, 10_500)
        ]
    );
    assert_eq!(
        (s[0].transfer_count, s[0].first_seq, s[0].last_seq),
        (3, Some(1), Some(3))
    );
    assert_eq!(s[0].closing_available.paise(), 147_000 - 10_500);
    assert_eq!(s[0].closing_held.paise(), 10_500);
    // Quiet days: nothing moved, balances carried.
    for quiet in [&s[1], &s[2], &s[4]] {
        assert_eq!(
            (quiet.transfer_count, quiet.first_seq, quiet.last_seq),
            (0, None, None)
        );
        assert!(quiet.totals.is_empty());
        assert_eq!(
            (quiet.opening_available, quiet.opening_held),
            (quiet.closing_available, quiet.closing_held)
        );
    }
    assert_eq!(
        s[3].totals,
        [
            (TransferKind::PayoutSettle, 10_000),
            (TransferKind::PayoutFee, 500)
        ]
    );
    assert_eq!((s[3].first_seq, s[3].last_seq), (Some(4), Some(5)));
    assert_eq!(s[3].closing_held, Money::ZERO);
    for pair in s.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "{}", pair[1].date);
        assert_eq!(
            (pair[1].opening_available, pair[1].opening_held),
            (pair[0].closing_available, pair[0].closing_held)
        );
    }
    assert!(s.iter().all(Statement::hash_ok));
    // Nothing more until the 25th closes; a second run writes nothing.
    assert_eq!(w.run_once().await.written, 0);
    let verdict = Verifier::default().verify(&store, &merchant).unwrap();
    assert_eq!(
        verdict,
        Verdict {
            ok: true,
            first_bad: None
        }
    );
    core.shutdown().await;
}

#[tokio::test]
async fn a_day_closes_after_midnight_and_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Buffered);
    let merchant = common::merchant(&store, 0, 0).await;
    let core = core(&store).await;
    seed(&store, merchant).await;
    let clock = ManualClock::at(at("2026-11-20T23:59:59Z"));
    let config = StatementConfig {
        grace_ms: 2_000,
        ..StatementConfig::default()
    };
    let mut w = writer(&store, &core, &clock, config);
    assert_eq!(w.run_once().await.written, 0, "the 20th is open");
    clock.set(at("2026-11-21T00:00:01.999Z"));
    assert_eq!(w.run_once().await.written, 0, "within the grace");
    clock.set(at("2026-11-21T00:00:02Z"));
    assert_eq!(w.run_once().await.written, 1);
    assert_eq!(dates(&all(&store, &merchant)), ["2026-11-20"]);
    core.shutdown().await;
}

#[tokio::test]
async fn a_restart_resumes_from_the_durable_point_reading_only_new_transfers() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Buffered);
    let merchant = common::merchant(&store, 0, 0).await;
    let core = core(&store).await;
    let mut ledger = seed(&store, merchant).await;
    let clock = ManualClock::at(at("2026-11-22T00:00:05Z"));
    let mut first = writer(&store, &core, &clock, StatementConfig::default());
    let report = first.run_once().await;
    assert_eq!((report.written, report.transfers_read), (2, 5));
    let before = all(&store, &merchant);
    drop(first);
    ledger
        .post(
            &store,
            TransferKind::PayoutHold,
            1_000,
            "2026-11-24T12:00:00Z",
        )
        .await;
    // A new writer: nothing in memory, as after a restart.
    clock.set(at("2026-11-26T00:00:05Z"));
    let mut second = writer(&store, &core, &clock, StatementConfig::default());
    let report: RunReport = second.run_once().await;
    assert_eq!(report.problems, Vec::<String>::new());
    // The point after the 21st is at posting 5 (the 20th's last transfer):
    // the run reads the three after it, not the whole ledger again.
    assert_eq!(report.transfers_read, 3);
    assert_eq!(report.written, 4, "22nd to 25th");
    let after = all(&store, &merchant);
    assert_eq!(after[..2], before[..], "nothing rewritten");
    assert_eq!(
        dates(&after),
        [
            "2026-11-20",
            "2026-11-21",
            "2026-11-22",
            "2026-11-23",
            "2026-11-24",
            "2026-11-25"
        ],
        "nothing skipped"
    );
    assert_eq!(after[2].prev_hash, before[1].hash);
    assert_eq!(after[4].totals, [(TransferKind::PayoutHold, 1_000)]);
    // The same ledger in one go gives the same chain.
    let fresh = tempfile::tempdir().unwrap();
    let other = common::open(fresh.path(), Durability::Buffered);
    common::ensure_merchant_with_id(&other, merchant, 0, 0).await;
    let other_core = core_for(&other).await;
    let mut copy = seed(&other, merchant).await;
    copy.post(
        &other,
        TransferKind::PayoutHold,
        1_000,
        "2026-11-24T12:00:00Z",
    )
    .await;
    let mut once = writer(&other, &other_core, &clock, StatementConfig::default());
    assert_eq!(once.run_once().await.written, 6);
    assert_eq!(all(&other, &merchant), after);
    other_core.shutdown().await;
    core.shutdown().await;
}

async fn core_for(store: &Store) -> Core {
    core(store).await
}

#[tokio::test]
async fn runs_are_bounded_and_add_up_to_the_same_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Buffered);
    let merchant = common::merchant(&store, 0, 0).await;
    let core = core(&store).await;
    seed(&store, merchant).await;
    let clock = ManualClock::at(at("2026-11-30T00:00:05Z"));
    let config = StatementConfig {
        statements_per_run: 2,
        transfers_per_run: 3,
        ..StatementConfig::default()
    };
    let mut w = writer(&store, &core, &clock, config);
    let mut runs = 0;
    loop {
        let report = w.run_once().await;
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(
            report.written <= 2 && report.transfers_read <= 3,
            "{report:?}"
        );
        runs += 1;
        if !report.more && report.written == 0 {
            break;
        }
        assert!(runs < 50);
    }
    let s = all(&store, &merchant);
    assert_eq!(s.len(), 10, "20th to 29th");
    for pair in s.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].date, pair[0].date.next());
    }
    let verdict = Verifier::default().verify(&store, &merchant).unwrap();
    assert!(verdict.ok);
    core.shutdown().await;
}

#[tokio::test]
async fn verify_names_the_first_tampered_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Buffered);
    let merchant = common::merchant(&store, 0, 0).await;
    let core = core(&store).await;
    seed(&store, merchant).await;
    let clock = ManualClock::at(at("2026-11-25T00:00:05Z"));
    writer(&store, &core, &clock, StatementConfig::default())
        .run_once()
        .await;
    let verifier = Verifier::default();
    assert!(verifier.verify(&store, &merchant).unwrap().ok);
    // A statement's field changed, its hash left alone.
    let changed = store
        .tamper_statement_for_tests(&merchant, day("2026-11-22"), |s| {
            s.closing_available = Money::from_paise(1);
        })
        .await
        .unwrap();
    assert!(changed);
    let verdict = verifier.verify(&store, &merchant).unwrap();
    assert_eq!(
        verdict,
        Verdict {
            ok: false,
            first_bad: Some(day("2026-11-22"))
        }
    );
    // Its hash recomputed too: it no longer matches the ledger's.
    store
        .tamper_statement_for_tests(&merchant, day("2026-11-22"), |s| s.hash = s.compute_hash())
        .await
        .unwrap();
    let verdict = verifier.verify(&store, &merchant).unwrap();
    assert_eq!(verdict.first_bad, Some(day("2026-11-22")));
    core.shutdown().await;
}

#[tokio::test]
async fn verify_recomputes_from_the_ledger_and_names_a_tampered_transfer_s_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Buffered);
    let merchant = common::merchant(&store, 0, 0).await;
    let core = core(&store).await;
    seed(&store, merchant).await;
    let clock = ManualClock::at(at("2026-11-25T00:00:05Z"));
    writer(&store, &core, &clock, StatementConfig::default())
        .run_once()
        .await;
    // The 23rd's payout fee (posting 7) said to be 4.00 instead of 5.00,
    // its after-balances kept consistent with that.
    let changed = store
        .tamper_transfer_for_tests(&merchant, 7, |t| {
            t.amount = Money::from_paise(400);
            t.held_after = Money::from_paise(100);
        })
        .await
        .unwrap();
    assert!(changed);
    // A fresh verifier (as after a restart) recomputes from the ledger.
    let verdict = Verifier::default().verify(&store, &merchant).unwrap();
    assert_eq!(
        verdict,
        Verdict {
            ok: false,
            first_bad: Some(day("2026-11-23"))
        }
    );
    core.shutdown().await;
}

#[tokio::test]
async fn the_core_s_own_pay_ins_make_today_s_statement_once_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Buffered);
    let merchant = common::merchant(&store, 200, 0).await;
    let core = core(&store).await;
    for i in 0..3 {
        core.wallets()
            .create_payin(merchant, common::payin(format!("o{i}"), 10_000, merchant))
            .await
            .unwrap();
    }
    let settled = common::eventually(std::time::Duration::from_secs(10), || {
        store
            .wallet(&merchant, Currency::Inr)
            .unwrap()
            .is_some_and(|w| w.last_seq == 3)
    })
    .await;
    assert!(settled);
    let today = Date::of(store.last_transfer(&merchant).unwrap().unwrap().created_at);
    let clock = ManualClock::at(today.start());
    let mut w = writer(&store, &core, &clock, StatementConfig::default());
    assert_eq!(w.run_once().await.written, 0, "today is open");
    clock.set(today.next().start().plus_ms(2_000));
    assert_eq!(w.run_once().await.written, 1);
    let s = store.statement(&merchant, today).unwrap().unwrap();
    // 2% fee: each pay-in credits 98.00 net; the fee is not the merchant's.
    assert_eq!(s.totals, [(TransferKind::PayinCredit, 29_400)]);
    assert_eq!(
        (s.transfer_count, s.first_seq, s.last_seq),
        (3, Some(1), Some(3))
    );
    assert_eq!(s.closing_available.paise(), 29_400);
    assert!(Verifier::default().verify(&store, &merchant).unwrap().ok);
    core.shutdown().await;
}
