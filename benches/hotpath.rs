//! Micro-benchmarks of the request hot path, one layer at a time: parsing a
//! pay-in body (`JsonBody`), money parsing and rendering (`Money`), routing
//! (`route`), one wallet command through `WalletHandle` with buffered
//! durability (no fsync: the actor, the overlay and the committer round
//! trip), and one `Store::commit` of a pay-in-sized write set, buffered.
//! Short on purpose (10–20 samples, a few seconds each).
//! Run: `cargo bench -p tijori-benches --bench hotpath`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use actors::{Core, CoreConfig, NewPayin, NewUser};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use domain::{Currency, Money, Role, UserId};
use hyper::Method;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use storage::{Durability, Space, Store, StoreConfig, WriteSet};
use tijori::http::request::JsonBody;
use tijori::http::router::route;

const PAYIN_BODY: &[u8] = br#"{"order_id":"ORDER-2026-000123","amount":"4999.50","currency":"INR","payer":"Jane Smith","payer_email":"jane@example.com","payer_vpa":"jane@upi","description":"Order 123","metadata":{"cart":"c-991","channel":"web"}}"#;

static ORDER: AtomicU64 = AtomicU64::new(0);

fn short<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group
}

fn parsing(c: &mut Criterion) {
    let mut group = short(c, "parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("payin_body", |b| {
        b.iter(|| {
            let body = JsonBody::parse(black_box(PAYIN_BODY)).unwrap();
            body.require(&["order_id", "amount", "payer"]).unwrap();
            let amount = body.money("amount").unwrap();
            let order = body.required_string("order_id", 64).unwrap();
            let meta = body.object("metadata", 4_096).unwrap();
            black_box((amount, order, meta))
        })
    });
    group.bench_function("money_parse", |b| {
        b.iter(|| Money::parse_amount(black_box("123456.78")).unwrap())
    });
    let m = Money::from_paise(12_345_678);
    group.bench_function("money_render", |b| b.iter(|| black_box(m).to_string()));
    group.bench_function("money_json_number", |b| {
        b.iter(|| black_box(m).to_json_number())
    });
    group.finish();
}

fn routing(c: &mut Criterion) {
    let mut group = short(c, "route");
    group.throughput(Throughput::Elements(1));
    group.bench_function("post_payments", |b| {
        b.iter(|| route(black_box(&Method::POST), black_box("/api/v1/payments")).map(|m| m.route))
    });
    group.bench_function("get_payment_by_id", |b| {
        b.iter(|| {
            route(
                black_box(&Method::GET),
                black_box("/api/v1/payments/txn_019a5f3e8c7b7d2e9a41c3f0b2d4e6a8"),
            )
            .map(|m| m.id.map(str::len))
        })
    });
    group.bench_function("unknown_404", |b| {
        b.iter(|| route(black_box(&Method::GET), black_box("/api/v1/nothing/here")).is_err())
    });
    group.finish();
}

fn payin(created_by: UserId) -> NewPayin {
    NewPayin {
        order_id: format!("hot-{}", ORDER.fetch_add(1, Ordering::Relaxed)),
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

fn wallet_command(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreConfig {
            durability: Durability::Buffered,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let config = CoreConfig {
        settle_delay_ms: 3_600_000,
        ..CoreConfig::default()
    };
    let core = rt.block_on(Core::start(store.clone(), config)).unwrap();
    let merchant = rt.block_on(async {
        let key = core.directory().bootstrap(None).await.unwrap().unwrap();
        let admin = core.directory().authenticate(&key).unwrap().id;
        let new = NewUser {
            name: "hot merchant".into(),
            email: None,
            role: Role::Merchant,
            parent_id: Some(admin),
            webhook_url: None,
            rate_limit_per_min: None,
            payin_fee_bps: Some(150),
            payout_fee: None,
        };
        core.directory().create(new).await.unwrap().0.id
    });
    let mut group = short(c, "wallet_buffered");
    group.throughput(Throughput::Elements(1));
    group.bench_function("create_payin", |b| {
        b.to_async(&rt).iter(|| async {
            core.wallets()
                .create_payin(merchant, payin(merchant))
                .await
                .unwrap()
        })
    });
    group.bench_function("balance", |b| {
        b.to_async(&rt)
            .iter(|| async { core.wallets().balance(merchant).await.unwrap() })
    });
    group.finish();
    rt.block_on(core.shutdown());
    store.close();
}

/// A write set shaped like a pay-in's: record, three index rows, the
/// uniqueness row, the pending row and the wallet.
fn payin_write_set(n: u64) -> WriteSet {
    let mut writes = WriteSet::new();
    let id = n.to_be_bytes();
    let record = vec![b'x'; 420];
    writes.put_raw(Space::Payments, [b"p".as_slice(), &id].concat(), record);
    for tag in [b'm', b'c', b't'] {
        writes.put_raw(
            Space::Index,
            [&[tag], b"owner-0123456789".as_slice(), &id].concat(),
            Vec::new(),
        );
    }
    writes.put_raw(Space::Unique, [b"u".as_slice(), &id].concat(), id.to_vec());
    writes.put_raw(
        Space::Pending,
        [b"d".as_slice(), &id].concat(),
        vec![b'm'; 16],
    );
    writes.put_raw(Space::Wallets, b"wallet-0".to_vec(), vec![b'w'; 200]);
    writes
}

fn storage_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreConfig {
            durability: Durability::Buffered,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let counter = AtomicU64::new(0);
    let mut group = short(c, "storage_buffered");
    group.throughput(Throughput::Elements(1));
    group.bench_function("commit_payin_write_set", |b| {
        b.to_async(&rt).iter_batched(
            || payin_write_set(counter.fetch_add(1, Ordering::Relaxed)),
            |writes| async { store.commit(writes).await.unwrap() },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    store.close();
}

criterion_group!(benches, parsing, routing, wallet_command, storage_commit);
criterion_main!(benches);
