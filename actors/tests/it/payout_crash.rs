//! kill -9 with the payout lifecycle in flight (SPEC §13). A child process
//! (this test binary, re-executed into `payout_crash_child_entry`) funds a
//! merchant, queues two payouts that do not fit (the second behind the
//! first), and pays 100.00 to the sandbox's reversing account; as soon as
//! the rail has processed that payout (its reversal row written in the same
//! commit, due a settle delay later) the parent SIGKILLs it. Then, on the
//! same store: the queue and the reversal row survived; a core started in
//! the parent reverses the payout, a pay-in pays out the queued payouts in
//! order, the rail processes them, and each transition happened exactly
//! once (one transfer of each kind per payout, the books audited, no due
//! row left); a second restart changes nothing.

use crate::common;

use domain::{PaymentStatus, Payout, PayoutId, PayoutStatus, TransferKind, UserId};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use storage::{Durability, PendingKind, Store};

const CHILD_DIR_ENV: &str = "TIJORI_PAYOUT_CRASH_CHILD_DIR";
const MARK: &str = "@@payout-crash ";
const SETTLE_DELAY_MS: u64 = 400;

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{MARK}{line}\n").as_bytes());
    let _ = out.flush();
}

fn child_test() -> String {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    format!("{module}::payout_crash_child_entry")
}

fn db_dir(dir: &Path) -> PathBuf {
    dir.join("db")
}

/// The child's workload; does nothing in a normal test run.
#[test]
fn payout_crash_child_entry() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(child(PathBuf::from(dir)));
}

async fn child(dir: PathBuf) {
    let store = common::open(&db_dir(&dir), Durability::Sync);
    let core = common::start(&store, common::config(SETTLE_DELAY_MS)).await;
    let wallets = core.wallets().clone();
    let m = common::merchant(&store, 0, 100).await;
    emit(&format!("merchant {m}"));
    let fund = wallets
        .create_payin(m, common::payin("fund", 1_000_000, m))
        .await
        .unwrap()
        .record;
    wallets
        .settle_payin(m, fund.id, PaymentStatus::Completed, None)
        .await
        .unwrap();
    let rev = wallets
        .create_payout(m, common::payout(10_000, "000000000001", m))
        .await
        .unwrap()
        .record;
    emit(&format!("reversing {}", rev.id));
    for (name, paise) in [("q1", 2_000_000u64), ("q2", 500)] {
        let mut new = common::payout(paise, "123456789012", m);
        new.queue_if_low_balance = true;
        let queued = wallets.create_payout(m, new).await.unwrap().record;
        assert_eq!(queued.status, PayoutStatus::Queued);
        emit(&format!("{name} {}", queued.id));
    }
    // The rail processes the reversing payout after its delay; the parent
    // kills us as soon as that is durable (and visible).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if store
            .payout(&rev.id)
            .unwrap()
            .is_some_and(|p| p.status == PayoutStatus::Processed)
        {
            emit("processed");
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// Runs the child until it says the payout was processed, then SIGKILLs
/// it; returns its protocol lines as (key, value).
fn run_child_until_processed(dir: &Path) -> HashMap<String, String> {
    let stderr_path = dir.join("child.stderr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &child_test(), "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) => {
                    let _ = tx.send(line);
                }
                Err(_) => break,
            }
        }
    });
    let mut seen = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the child never reported the processed payout; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        };
        let Some((_, rest)) = line.split_once(MARK) else {
            continue;
        };
        let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
        seen.insert(key.to_owned(), value.to_owned());
        if key == "processed" {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    reader.join().unwrap();
    seen
}

fn payout(store: &Store, id: &PayoutId) -> Payout {
    store.payout(id).unwrap().expect("payout in storage")
}

/// The kinds of the transfers a wallet posted for `reference`, in order.
fn kinds(store: &Store, m: &UserId, reference: &PayoutId) -> Vec<TransferKind> {
    let reference = reference.to_string();
    store
        .ledger(m, 1, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|t| t.reference == reference)
        .map(|t| t.kind)
        .collect()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_keeps_queued_payouts_and_a_pending_reversal_and_applies_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let seen = run_child_until_processed(dir.path());
    let id = |key: &str| -> PayoutId { seen[key].parse().unwrap() };
    let m: UserId = seen["merchant"].parse().unwrap();
    let (rev, q1, q2) = (id("reversing"), id("q1"), id("q2"));

    let store = common::open(&db_dir(dir.path()), Durability::Sync);
    // What the kill left: the queue in order, and the reversal due.
    let before = payout(&store, &rev);
    assert!(
        matches!(
            before.status,
            PayoutStatus::Processed | PayoutStatus::Reversed
        ),
        "{:?}",
        before.status
    );
    assert!(before.utr.is_some(), "a processed payout has its UTR");
    let queued: Vec<PayoutId> = store
        .queued_payouts(&m, 100)
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(queued, [q1, q2], "the durable FIFO survived, in order");
    let due = store.due_pending(i64::MAX, usize::MAX).unwrap();
    if before.status == PayoutStatus::Processed {
        assert!(
            due.iter()
                .any(|d| d.kind == PendingKind::PayoutReversal && d.record == *rev.as_bytes()),
            "the reversal's due row was written with the processing"
        );
    }
    assert_eq!(
        due.iter()
            .filter(|d| d.kind == PendingKind::PayoutQueueExpiry)
            .count(),
        2,
        "each queued payout has its expiry row"
    );

    // Restart: the rail reverses it, once.
    let core = common::start(&store, common::config(SETTLE_DELAY_MS)).await;
    let wallets = core.wallets().clone();
    until("the reversal", || {
        payout(&store, &rev).status == PayoutStatus::Reversed
    })
    .await;
    // Money comes in: the queue is tried, head first, in that write.
    let credit = wallets
        .create_payin(m, common::payin("credit", 2_500_000, m))
        .await
        .unwrap()
        .record;
    wallets
        .settle_payin(m, credit.id, PaymentStatus::Completed, None)
        .await
        .unwrap();
    assert_eq!(payout(&store, &q1).status, PayoutStatus::Pending);
    assert_eq!(payout(&store, &q2).status, PayoutStatus::Pending);
    assert!(store.queued_payouts(&m, 100).unwrap().is_empty());
    until("the dequeued payouts processed", || {
        [q1, q2]
            .iter()
            .all(|q| payout(&store, q).status == PayoutStatus::Processed)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2 * SETTLE_DELAY_MS)).await;
    core.shutdown().await;

    let check = |store: &Store| {
        use TransferKind::*;
        assert_eq!(
            kinds(store, &m, &rev),
            [PayoutHold, PayoutSettle, PayoutFee, PayoutReverse],
            "the reversing payout: each transfer once"
        );
        for q in [q1, q2] {
            assert_eq!(
                kinds(store, &m, &q),
                [PayoutHold, PayoutSettle, PayoutFee],
                "a dequeued payout: each transfer once"
            );
        }
        let wallet = common::audit(store, &m);
        // 10,000.00 in; 100.00 + 1.00 out then 100.00 back; 20,000.00 +
        // 1.00 and 5.00 + 1.00 out; 25,000.00 in.
        assert_eq!(
            (wallet.available.paise(), wallet.held.paise()),
            (1_000_000 - 100 + 2_500_000 - 2_000_100 - 600, 0)
        );
        assert_eq!(wallet.zero_sum(), 0);
        assert_eq!(
            store.due_pending(i64::MAX, usize::MAX).unwrap(),
            [],
            "no due row left behind"
        );
    };
    check(&store);
    drop(wallets);
    store.close();
    drop(store);

    // Once more from the top: nothing is applied again.
    let store = common::open(&db_dir(dir.path()), Durability::Sync);
    let core = common::start(&store, common::config(SETTLE_DELAY_MS)).await;
    tokio::time::sleep(Duration::from_millis(2 * SETTLE_DELAY_MS)).await;
    assert_eq!(
        core.wallets().balance(m).await.unwrap().available.paise(),
        1_499_200
    );
    core.shutdown().await;
    check(&store);
    store.close();
}
