//! The core end to end: a pay-in settles through the sandbox and credits the
//! wallet net of fees; a payout holds, then settles; the books balance.

use crate::common;

use actors::CoreConfig;
use domain::{PaymentStatus, PayoutStatus, Rejection};
use std::time::Duration;
use storage::Durability;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payin_and_payout_settle_through_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Sync);
    // Settling after 250 ms leaves the steps that must happen before a
    // settlement (the refused payout, the held balance) ample time, even on
    // a loaded machine; the settlements themselves are polled for.
    let core = common::start(&store, common::config(250)).await;
    let m = common::merchant(&store, 250, 1_000).await;
    let wallets = core.wallets();

    let created = wallets
        .create_payin(m, common::payin("o-1", 100_000, m))
        .await
        .unwrap();
    assert_eq!(created.record.status, PaymentStatus::Pending);
    assert_eq!(created.record.fee.paise(), 2_500);
    assert_eq!(
        wallets
            .create_payin(m, common::payin("o-1", 100, m))
            .await
            .unwrap_err(),
        Rejection::DuplicateOrderId
    );
    // Too large a payout before any money arrived.
    assert_eq!(
        wallets
            .create_payout(m, common::payout(10_000, "123456789012", m))
            .await
            .unwrap_err(),
        Rejection::InsufficientBalance
    );

    let completed =
        || store.payment(&created.record.id).unwrap().unwrap().status == PaymentStatus::Completed;
    assert!(
        common::eventually(Duration::from_secs(10), completed).await,
        "the pay-in did not complete"
    );
    let w = wallets.balance(m).await.unwrap();
    assert_eq!((w.available.paise(), w.held.paise()), (97_500, 0));

    let po = wallets
        .create_payout(m, common::payout(10_000, "123456789012", m))
        .await
        .unwrap()
        .record;
    let w = wallets.balance(m).await.unwrap();
    assert_eq!((w.available.paise(), w.held.paise()), (86_500, 11_000));
    let processed = || store.payout(&po.id).unwrap().unwrap().status == PayoutStatus::Processed;
    assert!(
        common::eventually(Duration::from_secs(10), processed).await,
        "the payout was not processed"
    );
    let w = common::audit(&store, &m);
    assert_eq!((w.available.paise(), w.held.paise()), (86_500, 0));
    // The rail deletes settled rows in its next round, without waiting.
    let cleared = || store.pending_count().unwrap() == 0;
    assert!(
        common::eventually(Duration::from_secs(10), cleared).await,
        "settled pending rows were not cleared"
    );

    core.shutdown().await;
    store.close();
}

/// A settlement by the rail takes its record out of the rail's due queue in
/// the same commit: whenever a settled record is visible, its `Pending` row
/// is gone, even with the connector's next poll an hour away. A record
/// settled by hand first keeps its row until the rail comes due and finds
/// it settled; the connector removes that row itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rail_settles_and_dequeues_in_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Sync);
    // Polls come every 300 ms: the first one after the due time settles;
    // a separate delete would wait for the one after it.
    let config = CoreConfig {
        settle_delay_ms: 50,
        connector_poll_ms: 300,
        ..CoreConfig::default()
    };
    let core = common::start(&store, config).await;
    let m = common::merchant(&store, 0, 0).await;
    let wallets = core.wallets();

    let rail = wallets
        .create_payin(m, common::payin("rail-1", 10_000, m))
        .await
        .unwrap()
        .record;
    let by_hand = wallets
        .create_payin(m, common::payin("hand-1", 10_000, m))
        .await
        .unwrap()
        .record;
    wallets
        .settle_payin(m, by_hand.id, PaymentStatus::Completed, None)
        .await
        .unwrap();
    assert_eq!(
        store.pending_count().unwrap(),
        2,
        "both rows wait for the rail"
    );

    let mut checked = 0;
    let settled = || {
        let status = store.payment(&rail.id).unwrap().unwrap().status;
        if status == PaymentStatus::Pending {
            return false;
        }
        // Read right after the record: the row went with it.
        let rows = store.due_pending(i64::MAX, usize::MAX).unwrap();
        assert!(
            rows.iter().all(|r| r.record != *rail.id.as_bytes()),
            "a settled record's row outlived its settlement"
        );
        checked += 1;
        true
    };
    assert!(common::eventually(Duration::from_secs(10), settled).await);
    assert_eq!(checked, 1);
    // The hand-settled one's row is removed by the connector.
    let cleared = || store.pending_count().unwrap() == 0;
    assert!(
        common::eventually(Duration::from_secs(10), cleared).await,
        "the row of a record settled by hand was not cleared"
    );
    assert_eq!(
        store.payment(&by_hand.id).unwrap().unwrap().status,
        PaymentStatus::Completed
    );

    core.shutdown().await;
    store.close();
}
