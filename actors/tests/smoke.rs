//! The core end to end: a pay-in settles through the sandbox and credits the
//! wallet net of fees; a payout holds, then settles; the books balance.

mod common;

use domain::{PaymentStatus, PayoutStatus, Rejection};
use std::time::Duration;
use storage::Durability;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payin_and_payout_settle_through_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Sync);
    let core = common::start(&store, common::config(20)).await;
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

    tokio::time::sleep(Duration::from_millis(300)).await;
    let p = store.payment(&created.record.id).unwrap().unwrap();
    assert_eq!(p.status, PaymentStatus::Completed);
    let w = wallets.balance(m).await.unwrap();
    assert_eq!((w.available.paise(), w.held.paise()), (97_500, 0));

    let po = wallets
        .create_payout(m, common::payout(10_000, "123456789012", m))
        .await
        .unwrap()
        .record;
    let w = wallets.balance(m).await.unwrap();
    assert_eq!((w.available.paise(), w.held.paise()), (86_500, 11_000));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.payout(&po.id).unwrap().unwrap().status,
        PayoutStatus::Processed
    );
    let w = common::audit(&store, &m);
    assert_eq!((w.available.paise(), w.held.paise()), (86_500, 0));
    assert_eq!(store.pending_count().unwrap(), 0);

    core.shutdown().await;
    store.close();
}
