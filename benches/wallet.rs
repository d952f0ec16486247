//! The durable command path: pay-ins through `WalletHandle` with `sync`
//! durability (real fdatasync), at 1, 8 and 64 wallets with one caller each,
//! and one hot wallet with 64 concurrent callers (pipelining). Each case
//! prints the mean number of write sets per fsync, which is what group
//! commit buys. Run: `cargo bench -p tijori-benches --bench wallet`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use actors::{Core, CoreConfig, NewPayin, NewUser};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use domain::{Currency, Money, Role, UserId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{Durability, Store, StoreConfig};

static ORDER: AtomicU64 = AtomicU64::new(0);

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    core: Core,
    merchants: Vec<UserId>,
}

async fn world(wallets: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreConfig {
            durability: Durability::Sync,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    // Settlement is not what we measure: the rail never comes due.
    let config = CoreConfig {
        settle_delay_ms: 3_600_000,
        ..CoreConfig::default()
    };
    let core = Core::start(store.clone(), config).await.unwrap();
    let key = core.directory().bootstrap(None).await.unwrap().unwrap();
    let admin = core.directory().authenticate(&key).unwrap().id;
    let mut merchants = Vec::new();
    for i in 0..wallets {
        let new = NewUser {
            name: format!("bench merchant {i}"),
            email: None,
            role: Role::Merchant,
            parent_id: Some(admin),
            webhook_url: None,
            rate_limit_per_min: None,
            payin_fee_bps: Some(150),
            payout_fee: None,
        };
        merchants.push(core.directory().create(new).await.unwrap().0.id);
    }
    World {
        _dir: dir,
        store,
        core,
        merchants,
    }
}

fn payin(created_by: UserId) -> NewPayin {
    NewPayin {
        order_id: format!("bench-{}", ORDER.fetch_add(1, Ordering::Relaxed)),
        amount: Money::from_paise(123_456),
        currency: Currency::Inr,
        payer: "Bench Payer".into(),
        payer_email: None,
        payer_phone: None,
        payer_vpa: None,
        description: None,
        metadata: None,
        created_by,
        idempotency: None,
    }
}

/// Runs `iters` pay-ins spread over `callers` tasks, caller i on wallet i % wallets.
async fn run(world: &Arc<World>, callers: usize, iters: u64) -> Duration {
    let per_caller = iters.div_ceil(callers as u64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(callers);
    for c in 0..callers {
        let world = world.clone();
        tasks.push(tokio::spawn(async move {
            let merchant = world.merchants[c % world.merchants.len()];
            for _ in 0..per_caller {
                world
                    .core
                    .wallets()
                    .create_payin(merchant, payin(merchant))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("durable_payins");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for (wallets, callers) in [(1, 1), (8, 8), (64, 64), (1, 64)] {
        let world = Arc::new(rt.block_on(world(wallets)));
        let stats = world.store.stats();
        let (rounds0, sets0) = (
            stats.rounds.load(Ordering::Relaxed),
            stats.write_sets.load(Ordering::Relaxed),
        );
        let id = BenchmarkId::from_parameter(format!("{wallets}_wallets_{callers}_callers"));
        group.bench_with_input(id, &callers, |b, &callers| {
            b.to_async(&rt).iter_custom(|iters| {
                let world = world.clone();
                async move { run(&world, callers, iters).await }
            });
        });
        let rounds = stats.rounds.load(Ordering::Relaxed) - rounds0;
        let sets = stats.write_sets.load(Ordering::Relaxed) - sets0;
        eprintln!(
            "  {wallets} wallets, {callers} callers: {sets} write sets in {rounds} fsyncs, mean batch {:.1}",
            sets as f64 / rounds.max(1) as f64
        );
        let world = Arc::into_inner(world).expect("no task holds the world");
        rt.block_on(world.core.shutdown());
        world.store.close();
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
