//! Shared set-up for the core's tests: a real fjall store on a temp dir,
//! merchants written straight to storage, and a started `Core`.
#![allow(dead_code)]

use actors::{Core, CoreConfig, NewPayin, NewPayout};
use domain::{
    Beneficiary, Currency, Money, PayoutMode, Role, Secret, Timestamp, User, UserId, UserStatus,
};
use std::path::Path;
use storage::{keys, Durability, Space, Store, StoreConfig, WriteSet};

pub fn open(dir: &Path, durability: Durability) -> Store {
    Store::open(
        dir,
        StoreConfig {
            durability,
            ..StoreConfig::default()
        },
    )
    .expect("store opens")
}

/// A config whose sandbox settles after `settle_delay_ms`.
pub fn config(settle_delay_ms: u64) -> CoreConfig {
    CoreConfig {
        settle_delay_ms,
        connector_poll_ms: 5,
        ..CoreConfig::default()
    }
}

/// Writes a merchant user with the given fee schedule and returns its id.
pub async fn merchant(store: &Store, payin_fee_bps: u32, payout_fee_paise: u64) -> UserId {
    let id = UserId::new();
    write_merchant(store, id, payin_fee_bps, payout_fee_paise).await;
    id
}

pub fn payin(order_id: impl Into<String>, paise: u64, created_by: UserId) -> NewPayin {
    NewPayin {
        order_id: order_id.into(),
        amount: Money::from_paise(paise),
        currency: Currency::Inr,
        payer: "Jane Smith".into(),
        payer_email: None,
        payer_phone: None,
        payer_vpa: None,
        description: None,
        metadata: None,
        created_by,
        idempotency: None,
    }
}

pub fn payout(paise: u64, account_number: &str, created_by: UserId) -> NewPayout {
    NewPayout {
        amount: Money::from_paise(paise),
        currency: Currency::Inr,
        beneficiary: Beneficiary {
            name: "Ravi".into(),
            account_number: account_number.into(),
            ifsc: "HDFC0000001".into(),
            vpa: None,
        },
        mode: PayoutMode::Imps,
        reference_id: None,
        purpose: None,
        created_by,
        idempotency: None,
        queue_if_low_balance: false,
    }
}

pub async fn start(store: &Store, config: CoreConfig) -> Core {
    Core::start(store.clone(), config)
        .await
        .expect("core starts")
}

/// Checks one wallet against its whole ledger in storage.
pub fn audit(store: &Store, merchant: &UserId) -> domain::Wallet {
    let wallet = store
        .wallet(merchant, Currency::Inr)
        .unwrap()
        .expect("wallet exists");
    let entries = store.ledger(merchant, 1, usize::MAX).unwrap();
    domain::ledger::audit(&wallet, &entries)
        .unwrap_or_else(|e| panic!("ledger audit of {merchant}: {e}"));
    wallet
}

/// Opens the store in `dir` again after an earlier instance was closed and
/// dropped. fjall holds a lock file until its last handle (and background
/// worker) is gone, so this retries briefly, bounded by a deadline.
pub async fn reopen(dir: &Path, durability: Durability) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let config = StoreConfig {
            durability,
            ..StoreConfig::default()
        };
        match Store::open(dir, config) {
            Ok(store) => return store,
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "store still locked; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("store at {} does not reopen: {e}", dir.display()),
        }
    }
}

/// Every record id of one index listing, newest first.
pub fn index_ids(store: &Store, tag: keys::IndexTag, owner: &UserId) -> Vec<[u8; 16]> {
    let page = store
        .list_index(tag, owner, None, None, None, usize::MAX, usize::MAX, |_| {
            Ok(true)
        })
        .unwrap();
    assert_eq!(page.next, None, "an unbounded listing stopped early");
    page.ids
}

/// The numbers of a wallet that money movement changes, for comparisons
/// that must ignore `updated_at`: available, held, pending_payins,
/// total_payins, total_payouts, total_fees, last_seq.
pub fn numbers(w: &domain::Wallet) -> [u64; 7] {
    [
        w.available.paise(),
        w.held.paise(),
        w.pending_payins.paise(),
        w.total_payins.paise(),
        w.total_payouts.paise(),
        w.total_fees.paise(),
        w.last_seq,
    ]
}

/// Pay-in fee as SPEC §5 defines it: basis points of the amount, rounded
/// half-up to the paisa (computed here independently of `Money`).
pub fn payin_fee(amount_paise: u64, bps: u32) -> u64 {
    let fee = (u128::from(amount_paise) * u128::from(bps) + 5_000) / 10_000;
    u64::try_from(fee).unwrap()
}

/// Polls `done` every few milliseconds until it holds or `within` passes;
/// returns whether it held.
pub async fn eventually(within: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Writes merchant `id` with the given fee schedule unless a user with that
/// id exists already (so a test that restarts keeps its merchants); returns
/// whether it wrote one.
pub async fn ensure_merchant_with_id(
    store: &Store,
    id: UserId,
    payin_fee_bps: u32,
    payout_fee_paise: u64,
) -> bool {
    if store.user(&id).unwrap().is_some() {
        return false;
    }
    write_merchant(store, id, payin_fee_bps, payout_fee_paise).await;
    true
}

async fn write_merchant(store: &Store, id: UserId, payin_fee_bps: u32, payout_fee_paise: u64) {
    let now = Timestamp::now();
    let user = User {
        id,
        name: format!("merchant {id}"),
        email: None,
        role: Role::Merchant,
        status: UserStatus::Active,
        parent_id: None,
        merchant_id: Some(id),
        webhook_url: None,
        webhook_secret: Secret::new("whsec_test".into()),
        previous_webhook_secret: None,
        webhook_secret_rotated_at: None,
        rate_limit_per_min: 6_000,
        payin_fee_bps,
        payout_fee: Money::from_paise(payout_fee_paise),
        key_hash: String::new(),
        created_at: now,
        updated_at: now,
        settlement_account: None,
        settlement_reserve: Money::ZERO,
        last_used_at: None,
    };
    let mut writes = WriteSet::new();
    writes.put(Space::Users, keys::user(&id), &user).unwrap();
    store.commit(writes).await.unwrap();
}

/// Gives merchant `id` (written by `merchant`) a settlement account to
/// `account_number` and a reserve, straight in storage (the wallet reads
/// them at each settlement).
pub async fn set_settlement_terms(
    store: &Store,
    id: UserId,
    account_number: &str,
    reserve_paise: u64,
) {
    let mut user = store.user(&id).unwrap().expect("the merchant exists");
    user.settlement_account = Some(domain::SettlementAccount {
        name: "Acme".into(),
        account_number: account_number.into(),
        ifsc: "HDFC0001234".into(),
    });
    user.settlement_reserve = Money::from_paise(reserve_paise);
    let mut writes = WriteSet::new();
    writes.put(Space::Users, keys::user(&id), &user).unwrap();
    store.commit(writes).await.unwrap();
}
