//! Stores a long history quickly, for the start-up benchmark: N pay-ins
//! created through `WalletHandle` (the same commands, records, ledger
//! transfers and events as over HTTP, without the HTTP) on M merchants,
//! settled by the sandbox rail, with `buffered` durability (no fsync per
//! round; one final persist). The data dir is then started by the real
//! server (`benches/startup/run.sh --prefilled-dir`).
//!
//! Run: `cargo run --release -p tijori-benches --example fill-history --
//!       --data-dir DIR --admin-key KEY --payins 10000000`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use actors::{Core, CoreConfig, NewPayin, NewUser};
use domain::{Currency, Money, Role, UserId};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{Durability, Store, StoreConfig};

struct Args {
    data_dir: PathBuf,
    admin_key: String,
    payins: u64,
    merchants: usize,
    callers: usize,
}

fn args() -> Args {
    let mut args = Args {
        data_dir: PathBuf::new(),
        admin_key: String::new(),
        payins: 1_000_000,
        merchants: 64,
        callers: 256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--data-dir" => args.data_dir = value.into(),
            "--admin-key" => args.admin_key = value,
            "--payins" => args.payins = value.parse().expect("--payins N"),
            "--merchants" => args.merchants = value.parse().expect("--merchants N"),
            "--callers" => args.callers = value.parse().expect("--callers N"),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        !args.data_dir.as_os_str().is_empty(),
        "--data-dir DIR is required"
    );
    assert!(args.merchants > 0 && args.callers > 0);
    args
}

fn payin(created_by: UserId, n: u64) -> NewPayin {
    NewPayin {
        order_id: format!("fill-{n}"),
        amount: Money::from_paise(100_000 + n % 50_000),
        currency: Currency::Inr,
        payer: "Fill Payer".into(),
        payer_email: None,
        payer_phone: None,
        payer_vpa: None,
        description: None,
        metadata: None,
        created_by,
        idempotency: None,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = args();
    let store = Store::open(
        &args.data_dir,
        StoreConfig {
            durability: Durability::Buffered,
            ..StoreConfig::default()
        },
    )
    .expect("the store opens");
    let config = CoreConfig {
        settle_delay_ms: 5,
        // Nothing is read back: the audit would only slow the fill.
        ledger_audit_interval_ms: 0,
        ..CoreConfig::default()
    };
    let core = Arc::new(Core::start(store.clone(), config).await.expect("core"));
    let key = (!args.admin_key.is_empty()).then(|| args.admin_key.clone());
    core.directory().bootstrap(key).await.expect("bootstrap");
    let admin = core
        .directory()
        .authenticate(&args.admin_key)
        .expect("the admin key authenticates (an empty or this store)")
        .id;
    let mut merchants = Vec::with_capacity(args.merchants);
    for i in 0..args.merchants {
        let new = NewUser {
            name: format!("history merchant {i}"),
            email: None,
            role: Role::Merchant,
            parent_id: Some(admin),
            webhook_url: None,
            rate_limit_per_min: None,
            payin_fee_bps: Some(150),
            payout_fee: None,
        };
        merchants.push(core.directory().create(new).await.expect("merchant").0.id);
    }
    let merchants = Arc::new(merchants);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = {
        let next = next.clone();
        let core = core.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let done = next.load(Ordering::Relaxed);
                eprintln!(
                    "fill: {done} pay-ins created in {:.0} s, {} awaiting the rail",
                    started.elapsed().as_secs_f64(),
                    core.settlements().pending()
                );
            }
        })
    };
    let mut tasks = Vec::with_capacity(args.callers);
    for c in 0..args.callers {
        let (core, merchants, next) = (core.clone(), merchants.clone(), next.clone());
        let total = args.payins;
        tasks.push(tokio::spawn(async move {
            let merchant = merchants[c % merchants.len()];
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                core.wallets()
                    .create_payin(merchant, payin(merchant, n))
                    .await
                    .expect("a pay-in is created");
            }
        }));
    }
    for t in tasks {
        t.await.expect("caller");
    }
    // The history is settled before it is handed over: a restart must not
    // start with millions of settlements to do.
    while core.settlements().pending() > 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    progress.abort();
    let _ = progress.await;
    let elapsed = started.elapsed();
    let core = Arc::into_inner(core).expect("no task holds the core");
    core.shutdown().await;
    store.close();
    println!(
        "stored {} settled pay-ins on {} merchants in {:.0} s ({:.0}/s)",
        args.payins,
        args.merchants,
        elapsed.as_secs_f64(),
        args.payins as f64 / elapsed.as_secs_f64()
    );
}
