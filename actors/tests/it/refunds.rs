//! kill -9 with refunds in flight (SPEC §12). A child process (this test
//! binary, re-executed into `refund_child_entry`) runs the money core on a
//! `Durability::Sync` store: tasks fund the merchant with pay-ins settled by
//! hand and refund them in parts (some with the sandbox's failing reason)
//! while the sandbox settles refunds after a short delay; the child prints
//! every refund the wallet handle acknowledged. The parent SIGKILLs it at a
//! random moment, reopens the store and checks, every cycle, that
//! - every acknowledged refund is stored, and a refund seen terminal stays
//!   as it was;
//! - each refund has exactly one `refund_hold`, and one `refund_settle`
//!   (processed) or one `refund_release` (failed) or neither (pending);
//! - each pay-in's `refunded_amount` is the sum of its non-failed refunds
//!   and never above its amount;
//! - a pending refund still has its row in the rail's due queue;
//! - the wallet passes the ledger audit.
//!
//! Finally a core started in the parent settles every refund the crashes
//! left pending, exactly once, and the books still balance.

use crate::common;

use actors::{NewRefund, WalletHandle};
use domain::{
    Money, PaymentId, PaymentStatus, RefundId, RefundStatus, Rejection, TransferKind, UserId,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use storage::keys::IndexTag;
use storage::{Durability, PendingKind, Store, StoreConfig};

const CHILD_DIR_ENV: &str = "TIJORI_REFUND_CHILD_DIR";
const CHILD_RUN_ENV: &str = "TIJORI_REFUND_CHILD_RUN";
const MARK: &str = "@@refund ";
const CYCLES: u32 = 6;
const CHILD_TASKS: usize = 3;
const CHILD_LIFETIME: Duration = Duration::from_secs(30);
/// Long enough that kills find refunds pending, short enough that some settle.
const CHILD_SETTLE_DELAY_MS: u64 = 150;

fn child_test() -> String {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    format!("{module}::refund_child_entry")
}

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{MARK}{line}\n").as_bytes());
    let _ = out.flush();
}

/// The merchant's id, written to a file before the merchant itself.
fn merchant_of(dir: &Path) -> UserId {
    let file = dir.join("merchant.txt");
    if let Some(id) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
    {
        return id;
    }
    let id = UserId::new();
    let tmp = dir.join("merchant.tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(id.to_string().as_bytes()).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    id
}

#[test]
fn refund_child_entry() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let run: u32 = std::env::var(CHILD_RUN_ENV)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(child(PathBuf::from(dir), run));
}

async fn child(dir: PathBuf, run: u32) {
    let config = StoreConfig {
        durability: Durability::Sync,
        indexer_lag_ms: if run % 2 == 1 { 25 } else { 0 },
        ..StoreConfig::default()
    };
    let store = Store::open(&dir.join("db"), config).expect("store opens");
    let m = merchant_of(&dir);
    common::ensure_merchant_with_id(&store, m, 0, 0).await;
    let core = common::start(&store, common::config(CHILD_SETTLE_DELAY_MS)).await;
    emit("ready");
    let deadline = Instant::now() + CHILD_LIFETIME;
    let tasks: Vec<_> = (0..CHILD_TASKS)
        .map(|t| tokio::spawn(child_task(core.wallets().clone(), m, run, t, deadline)))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    core.shutdown().await;
    store.close();
}

async fn child_task(wallets: WalletHandle, m: UserId, run: u32, t: usize, deadline: Instant) {
    let mut rng = SmallRng::seed_from_u64(u64::from(run) * 100 + t as u64);
    let mut n = 0u32;
    while Instant::now() < deadline {
        n += 1;
        let amount = rng.random_range(1_000..=50_000u64);
        let order = format!("r{run}-t{t}-{n}");
        let Ok(p) = wallets
            .create_payin(m, common::payin(order, amount, m))
            .await
        else {
            continue;
        };
        let p = p.record;
        if wallets
            .settle_payin(m, p.id, PaymentStatus::Completed, None)
            .await
            .is_err()
        {
            continue;
        }
        for k in 0..rng.random_range(1..=4) {
            let part = if k == 3 {
                None
            } else {
                Some(Money::from_paise(rng.random_range(100..=amount / 3)))
            };
            let reason = rng.random_bool(0.3).then(|| "fail@sandbox".to_owned());
            let new = NewRefund {
                payment_id: p.id,
                amount: part,
                reason,
                created_by: m,
                idempotency: None,
            };
            match wallets.create_refund(m, new).await {
                Ok(r) => emit(&format!("refund {} {}", p.id, r.record.id)),
                Err(Rejection::RefundExceedsPayment | Rejection::InsufficientBalance) => {}
                Err(e) => emit(&format!("error {e:?}")),
            }
        }
    }
}

/// Runs one child until a random kill; returns the acknowledged refunds.
fn run_child(dir: &Path, cycle: u32, rng: &mut SmallRng) -> Vec<(PaymentId, RefundId)> {
    let stderr_path = dir.join(format!("child-{cycle}.stderr"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &child_test(), "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_RUN_ENV, cycle.to_string())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.ends_with('\n') => {
                    let _ = tx.send(line.clone());
                }
                Ok(_) => break,
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|e| {
            let _ = child.kill();
            let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("cycle {cycle}: child never became ready ({e:?}); stderr:\n{text}");
        });
        let ready = line.contains(&format!("{MARK}ready"));
        lines.push(line);
        if ready {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(rng.random_range(200..=700)));
    assert!(
        child.try_wait().unwrap().is_none(),
        "cycle {cycle}: the child exited by itself"
    );
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let mut acks = Vec::new();
    for line in &lines {
        let Some(at) = line.find(MARK) else { continue };
        let words: Vec<&str> = line[at + MARK.len()..].trim_end().split(' ').collect();
        match words.as_slice() {
            ["ready"] => {}
            ["refund", p, r] => acks.push((p.parse().unwrap(), r.parse().unwrap())),
            _ => panic!("cycle {cycle}: unexpected line from the child: {line:?}"),
        }
    }
    acks
}

/// The per-cycle checks; returns the status of every stored refund.
fn check_store(
    store: &Store,
    m: &UserId,
    acked: &[(PaymentId, RefundId)],
    seen: &mut HashMap<RefundId, RefundStatus>,
    when: &str,
) -> HashMap<RefundId, RefundStatus> {
    common::audit(store, m);
    let ids = common::index_ids(store, IndexTag::RefundsByMerchant, m);
    let mut now = HashMap::new();
    let mut by_payment: HashMap<PaymentId, u64> = HashMap::new();
    for id in &ids {
        let r = store
            .refund(&RefundId::from_bytes(*id))
            .unwrap()
            .unwrap_or_else(|| panic!("{when}: a listed refund is not stored"));
        if r.status != RefundStatus::Failed {
            *by_payment.entry(r.payment_id).or_default() += r.amount.paise();
        }
        if let Some(before) = seen.get(&r.id) {
            if *before != RefundStatus::Pending {
                assert_eq!(
                    r.status, *before,
                    "{when}: terminal refund {} changed",
                    r.id
                );
            }
        }
        now.insert(r.id, r.status);
    }
    for (p, r) in acked {
        assert!(
            now.contains_key(r),
            "{when}: acknowledged refund {r} of {p} is lost"
        );
        by_payment.entry(*p).or_default();
    }
    // Exactly the transfers each refund's status implies.
    let mut kinds: HashMap<String, Vec<TransferKind>> = HashMap::new();
    for t in store.ledger(m, 1, usize::MAX).unwrap() {
        kinds.entry(t.reference.clone()).or_default().push(t.kind);
    }
    for (id, status) in &now {
        let got = kinds.remove(&id.to_string()).unwrap_or_default();
        let want = match status {
            RefundStatus::Pending => vec![TransferKind::RefundHold],
            RefundStatus::Processed => vec![TransferKind::RefundHold, TransferKind::RefundSettle],
            RefundStatus::Failed => vec![TransferKind::RefundHold, TransferKind::RefundRelease],
        };
        assert_eq!(got, want, "{when}: transfers of refund {id} ({status:?})");
    }
    for (p, refunded) in by_payment {
        let payment = store.payment(&p).unwrap().expect("a refunded pay-in");
        assert_eq!(
            payment.refunded_amount.paise(),
            refunded,
            "{when}: refunded_amount of {p}"
        );
        assert!(payment.refunded_amount <= payment.amount, "{when}: {p}");
    }
    let due: Vec<[u8; 16]> = store
        .due_pending(i64::MAX, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|item| item.kind == PendingKind::Refund)
        .map(|item| item.record)
        .collect();
    for (id, status) in &now {
        if *status == RefundStatus::Pending {
            assert!(
                due.contains(id.as_bytes()),
                "{when}: pending refund {id} has no due row: it would never settle"
            );
        }
    }
    seen.extend(now.iter().map(|(k, v)| (*k, *v)));
    now
}

#[test]
fn kill9_with_pending_refunds_settles_each_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(0x00EF_0D59);
    let mut acked = Vec::new();
    let mut seen = HashMap::new();
    let mut pending_at_kill = 0;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for cycle in 0..CYCLES {
        acked.extend(run_child(dir.path(), cycle, &mut rng));
        let m = merchant_of(dir.path());
        let store = runtime.block_on(common::reopen(&dir.path().join("db"), Durability::Sync));
        let now = check_store(&store, &m, &acked, &mut seen, &format!("cycle {cycle}"));
        pending_at_kill += now
            .values()
            .filter(|s| **s == RefundStatus::Pending)
            .count();
        store.close();
    }
    assert!(!acked.is_empty(), "no refund was acknowledged");
    assert!(pending_at_kill > 0, "no kill found a refund pending");

    // The rail settles what the crashes left pending, once.
    runtime.block_on(async {
        let m = merchant_of(dir.path());
        let store = common::reopen(&dir.path().join("db"), Durability::Sync).await;
        let core = common::start(&store, common::config(5)).await;
        let settled = common::eventually(Duration::from_secs(20), || {
            common::index_ids(&store, IndexTag::RefundsByMerchant, &m)
                .iter()
                .all(|id| {
                    store
                        .refund(&RefundId::from_bytes(*id))
                        .unwrap()
                        .is_some_and(|r| r.status != RefundStatus::Pending)
                })
        })
        .await;
        assert!(
            settled,
            "pending refunds were not settled after the restart"
        );
        // Time for a second settlement to show, if there were one.
        tokio::time::sleep(Duration::from_millis(200)).await;
        core.shutdown().await;
        let now = check_store(&store, &m, &acked, &mut seen, "final");
        assert!(now.values().all(|s| *s != RefundStatus::Pending));
        let failed = now.values().filter(|s| **s == RefundStatus::Failed).count();
        assert!(failed > 0 && failed < now.len(), "both outcomes happen");
        store.close();
        eprintln!(
            "refund kill -9: {CYCLES} cycles, {} refunds acknowledged, {} stored, \
             {pending_at_kill} found pending after kills",
            acked.len(),
            now.len()
        );
    });
}
