//! The core end to end: a pay-in settles through the sandbox and credits the
//! wallet net of fees; a payout holds, then settles; the books balance.

use crate::common;

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
