//! Shared set-up for the core's tests: a real fjall store on a temp dir,
//! merchants written straight to storage, and a started `Core`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

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
        rate_limit_per_min: 6_000,
        payin_fee_bps,
        payout_fee: Money::from_paise(payout_fee_paise),
        key_hash: String::new(),
        created_at: now,
        updated_at: now,
    };
    let mut writes = WriteSet::new();
    writes.put(Space::Users, keys::user(&id), &user).unwrap();
    store.commit(writes).await.unwrap();
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
        },
        mode: PayoutMode::Imps,
        reference_id: None,
        purpose: None,
        created_by,
        idempotency: None,
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
