//! Settlements in the core (SPEC §14): the rail settles a settlement left
//! pending by a stop, after the restart, exactly once (one hold, one
//! settle, the due row gone), and a third start changes nothing; the
//! cycle's sweep skips merchants without an account and those with nothing
//! above their reserve.

use crate::common;

use actors::settlement_cycle;
use domain::{PaymentStatus, Settlement, SettlementStatus, TransferKind, UserId};
use std::time::Duration;
use storage::{Durability, PendingKind, Store};

fn kinds_of(store: &Store, merchant: &UserId, reference: &str) -> Vec<TransferKind> {
    store
        .ledger(merchant, 1, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|t| t.reference == reference)
        .map(|t| t.kind)
        .collect()
}

fn pending_settlements(store: &Store) -> usize {
    store
        .due_pending(i64::MAX, usize::MAX)
        .unwrap()
        .iter()
        .filter(|d| d.kind == PendingKind::Settlement)
        .count()
}

async fn settled(store: &Store, id: &domain::SettlementId) -> Settlement {
    let mut settlement = None;
    let done = common::eventually(Duration::from_secs(10), || {
        settlement = store.settlement(id).unwrap();
        settlement
            .as_ref()
            .is_some_and(|s| s.status != SettlementStatus::Pending)
    })
    .await;
    assert!(done, "settlement {id} still pending: {settlement:?}");
    settlement.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_settlement_is_settled_after_a_restart_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Sync);
    // Due 1.5 s after creation: after the stop below, before the test's patience.
    let core = common::start(&store, common::config(1_500)).await;
    let wallets = core.wallets().clone();
    let (m, failing) = (
        common::merchant(&store, 0, 0).await,
        common::merchant(&store, 0, 0).await,
    );
    common::set_settlement_terms(&store, m, "123456789012", 10_000).await;
    common::set_settlement_terms(&store, failing, "000000000000", 0).await;
    for (merchant, order) in [(m, "o-m"), (failing, "o-f")] {
        let p = wallets
            .create_payin(merchant, common::payin(order, 90_000, merchant))
            .await
            .unwrap()
            .record;
        wallets
            .settle_payin(merchant, p.id, PaymentStatus::Completed, None)
            .await
            .unwrap();
    }
    let st = wallets.create_settlement(m).await.unwrap();
    let st_failing = wallets.create_settlement(failing).await.unwrap();
    assert_eq!(
        (st.amount.paise(), st_failing.amount.paise()),
        (80_000, 90_000)
    );
    core.shutdown().await;
    store.close();
    drop((store, wallets));

    // Still pending in storage, with its due row: nothing settled it.
    let store = common::reopen(dir.path(), Durability::Sync).await;
    assert_eq!(
        store.settlement(&st.id).unwrap().unwrap().status,
        SettlementStatus::Pending
    );
    assert_eq!(pending_settlements(&store), 2);
    let core = common::start(&store, common::config(1_500)).await;
    let done = settled(&store, &st.id).await;
    let failed = settled(&store, &st_failing.id).await;
    assert_eq!(done.status, SettlementStatus::Processed);
    assert!(done.utr.is_some());
    assert_eq!(failed.status, SettlementStatus::Failed);
    assert!(common::eventually(Duration::from_secs(5), || pending_settlements(&store) == 0).await);
    let check = |store: &Store| {
        assert_eq!(
            kinds_of(store, &m, &st.id.to_string()),
            [TransferKind::SettlementHold, TransferKind::SettlementSettle]
        );
        assert_eq!(
            kinds_of(store, &failing, &st_failing.id.to_string()),
            [
                TransferKind::SettlementHold,
                TransferKind::SettlementRelease
            ]
        );
        let w = common::audit(store, &m);
        assert_eq!((w.available.paise(), w.held.paise()), (10_000, 0));
        let f = common::audit(store, &failing);
        assert_eq!((f.available.paise(), f.held.paise()), (90_000, 0));
        for wallet in [&w, &f] {
            assert_eq!(wallet.zero_sum(), 0);
        }
    };
    check(&store);
    core.shutdown().await;
    store.close();
    drop(store);

    // A third start: nothing is applied again.
    let store = common::reopen(dir.path(), Durability::Sync).await;
    let core = common::start(&store, common::config(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    check(&store);
    assert_eq!(pending_settlements(&store), 0);
    core.shutdown().await;
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_settles_merchants_with_an_account_and_something_above_the_reserve() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Buffered);
    let core = common::start(&store, common::config(3_600_000)).await;
    let wallets = core.wallets().clone();
    let mut merchants = Vec::new();
    // (account?, reserve, funded): swept, swept, no account, all reserved,
    // less than 1.00 above the reserve, suspended.
    for (account, reserve, funded) in [
        (true, 0, 50_000),
        (true, 20_000, 50_000),
        (false, 0, 50_000),
        (true, 50_000, 50_000),
        (true, 49_950, 50_000),
        (true, 0, 50_000),
    ] {
        let id = common::merchant(&store, 0, 0).await;
        if account {
            common::set_settlement_terms(&store, id, "123456789012", reserve).await;
        }
        let p = wallets
            .create_payin(id, common::payin("fund", funded, id))
            .await
            .unwrap()
            .record;
        wallets
            .settle_payin(id, p.id, PaymentStatus::Completed, None)
            .await
            .unwrap();
        merchants.push(id);
    }
    let suspended = merchants[5];
    let mut user = store.user(&suspended).unwrap().unwrap();
    user.status = domain::UserStatus::Suspended;
    let mut writes = storage::WriteSet::new();
    writes.user_saved(&user).unwrap();
    store.commit(writes).await.unwrap();
    // The directory loaded users at start: these merchants were written
    // after it, so the sweep is handed them through a fresh directory.
    core.shutdown().await;
    store.close();
    drop((store, wallets));
    let store = common::reopen(dir.path(), Durability::Buffered).await;
    let core = common::start(&store, common::config(3_600_000)).await;
    let report = settlement_cycle::sweep(core.wallets(), core.directory()).await;
    assert_eq!(
        report,
        settlement_cycle::SweepReport {
            created: 2,
            nothing: 2,
            failed: 0
        }
    );
    let held: Vec<u64> = merchants
        .iter()
        .map(|m| common::audit(&store, m).held.paise())
        .collect();
    assert_eq!(held, [50_000, 30_000, 0, 0, 0, 0]);
    // A second sweep finds nothing more above the reserves.
    let again = settlement_cycle::sweep(core.wallets(), core.directory()).await;
    assert_eq!((again.created, again.nothing), (0, 4));
    core.shutdown().await;
    store.close();
}
