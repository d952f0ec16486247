//! kill -9 crash loop. A child process (this test binary, re-executed into
//! `crash_child_entry`) runs the money core on a `Durability::Sync` store:
//! several tasks create pay-ins and payouts while the sandbox settles them,
//! and the child prints every id the wallet handle acknowledged. The parent
//! SIGKILLs it at a random moment (every fourth cycle the timer starts at
//! spawn, so the kill may also hit recovery and start-up), reopens the store
//! and checks, every cycle, that
//! - every acknowledged pay-in and payout is in storage, and every record
//!   seen by an earlier check is still there, terminal ones unchanged;
//! - every wallet passes the ledger audit, and agrees with its records:
//!   `pending_payins` is the sum of pending pay-ins, totals match settled
//!   records, each record has exactly the ledger entries its status implies;
//! - nothing is duplicated (order ids, ledger entries per record) and every
//!   record is in its listings, its unique index and, while pending, in the
//!   connector's `Pending` space (or it would never settle).
//!
//! Finally a core started in the parent settles everything the crashes left
//! pending, and the books still balance.
//!
//! kill -9 only loses what fjall has not yet handed to the OS, which the
//! committer does at the start of each persist: the indexer's batches (the
//! rows reads use) are lost that way and recovered from the journal. Some
//! children run with the indexer lagging the journal, so that kills land
//! while durable commands are not yet applied. Checked in-process: no round
//! is visible before it is durable, and an Idempotency-Key replay is not
//! acknowledged before the original write is durable.

use crate::common;

use actors::{Created, Idempotency, WalletHandle};
use domain::{
    Payment, PaymentId, PaymentStatus, Payout, PayoutId, PayoutStatus, Rejection, TransferKind,
    UserId,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use storage::keys::{IndexTag, UniqueKind};
use storage::{Durability, PendingKind, Space, Store, StoreConfig};

/// Set (to the data directory) only in the child process.
const CHILD_DIR_ENV: &str = "TIJORI_CRASH_CHILD_DIR";
/// The cycle number, so that the child's order ids never repeat.
const CHILD_RUN_ENV: &str = "TIJORI_CRASH_CHILD_RUN";
/// Marks the child's protocol lines; libtest may print before it on a line.
const MARK: &str = "@@crash ";

/// The child's libtest name (`crash::crash_child_entry`): its path in the
/// test binary without the crate's name, as `--exact` wants it.
fn child_test() -> String {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    format!("{module}::crash_child_entry")
}

const CYCLES: u32 = 24;
const MERCHANTS: usize = 3;
/// (payin_fee_bps, payout_fee_paise) of merchant i.
const FEES: [(u32, u64); MERCHANTS] = [(250, 1_000), (0, 0), (199, 500)];
const CHILD_TASKS: usize = 6;
/// The child stops by itself after this long, even if never killed.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);
const CHILD_SETTLE_DELAY_MS: u64 = 40;

fn db_dir(dir: &Path) -> PathBuf {
    dir.join("db")
}

fn merchants_file(dir: &Path) -> PathBuf {
    dir.join("merchants.txt")
}

fn read_merchants(dir: &Path) -> Option<Vec<UserId>> {
    let text = std::fs::read_to_string(merchants_file(dir)).ok()?;
    let ids: Vec<UserId> = text
        .lines()
        .map(|l| l.parse().expect("merchant id in merchants.txt"))
        .collect();
    assert_eq!(ids.len(), MERCHANTS, "merchants.txt is complete");
    Some(ids)
}

// ---------------------------------------------------------------- child --

/// One protocol line, written whole and flushed at once, so that a kill can
/// cut at most the line being written.
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{MARK}{line}\n").as_bytes());
    let _ = out.flush();
}

/// The child's workload. Does nothing in a normal test run: only the crash
/// loop starts it, with `TIJORI_CRASH_CHILD_DIR` set.
#[test]
fn crash_child_entry() {
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

/// Ids are written to a file first (atomically), users second, so that a
/// kill between the two leaves the same ids for the next run to create.
async fn ensure_merchants(dir: &Path, store: &Store) -> Vec<UserId> {
    let ids = match read_merchants(dir) {
        Some(ids) => ids,
        None => {
            let ids: Vec<UserId> = (0..MERCHANTS).map(|_| UserId::new()).collect();
            let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
            let tmp = dir.join("merchants.tmp");
            let mut file = std::fs::File::create(&tmp).unwrap();
            file.write_all(text.as_bytes()).unwrap();
            file.sync_all().unwrap();
            std::fs::rename(&tmp, merchants_file(dir)).unwrap();
            ids
        }
    };
    for (id, (bps, fee)) in ids.iter().zip(FEES) {
        common::ensure_merchant_with_id(store, *id, bps, fee).await;
    }
    ids
}

/// Prints the acknowledgement of a pay-in as soon as the handle returned it.
fn ack_payin(m: UserId, result: &Result<Created<Payment>, Rejection>) {
    match result {
        Ok(c) if c.replayed => emit(&format!("replay {m} {}", c.record.id)),
        Ok(c) => emit(&format!("payin {m} {}", c.record.id)),
        Err(e) => emit(&format!("error payin {m}: {e:?}")),
    }
}

/// One client of merchant `m`: pay-ins (every other one with an
/// Idempotency-Key, retried a moment later as a client whose connection
/// dropped would), and a payout every third round.
async fn child_task(wallets: WalletHandle, m: UserId, run: u32, t: usize, deadline: Instant) {
    let mut rng = SmallRng::seed_from_u64(u64::from(run) << 8 | t as u64);
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let order_id = format!("r{run}-t{t}-{i}");
        let mut new = common::payin(order_id.clone(), rng.random_range(100..50_000), m);
        if i.is_multiple_of(7) {
            new.payer_vpa = Some("fail@sandbox".into());
        }
        if i.is_multiple_of(2) {
            new.idempotency = Some(Idempotency {
                key: format!("key-{order_id}"),
                fingerprint: format!("body-{order_id}"),
                fields: Vec::new(),
            });
            let first = tokio::spawn({
                let (wallets, new) = (wallets.clone(), new.clone());
                async move {
                    let result = wallets.create_payin(m, new).await;
                    ack_payin(m, &result);
                    result
                }
            });
            // The retry lands anywhere from "still queued" to "long durable".
            match rng.random_range(0..4) {
                0 => {}
                1 => tokio::task::yield_now().await,
                n => tokio::time::sleep(Duration::from_millis(n - 1)).await,
            }
            let retry = wallets.create_payin(m, new).await;
            ack_payin(m, &retry);
            let first = first.await.unwrap();
            if let (Ok(a), Ok(b)) = (&first, &retry) {
                if a.record.id != b.record.id || a.replayed == b.replayed {
                    emit(&format!(
                        "error idempotency {m}: {} ({}) vs {} ({})",
                        a.record.id, a.replayed, b.record.id, b.replayed
                    ));
                }
            }
        } else {
            ack_payin(m, &wallets.create_payin(m, new).await);
        }
        if i.is_multiple_of(3) {
            let account = if i.is_multiple_of(5) {
                "000000000000"
            } else {
                "123456789012"
            };
            let mut new = common::payout(rng.random_range(100..3_000), account, m);
            if i.is_multiple_of(2) {
                new.reference_id = Some(order_id);
            }
            match wallets.create_payout(m, new).await {
                Ok(c) => emit(&format!("payout {m} {}", c.record.id)),
                Err(Rejection::InsufficientBalance) => {}
                Err(e) => emit(&format!("error payout {m}: {e:?}")),
            }
        }
    }
}

async fn child(dir: PathBuf, run: u32) {
    // Every other child's indexer lags the journal, so that its kill lands
    // while durable commands are not applied yet (recovery must apply them).
    let config = StoreConfig {
        durability: Durability::Sync,
        indexer_lag_ms: if run % 2 == 1 { 25 } else { 0 },
        ..StoreConfig::default()
    };
    let store = Store::open(&db_dir(&dir), config).expect("store opens");
    let merchants = ensure_merchants(&dir, &store).await;
    let core = common::start(&store, common::config(CHILD_SETTLE_DELAY_MS)).await;
    emit("ready");
    let deadline = Instant::now() + CHILD_LIFETIME;
    let tasks: Vec<_> = (0..CHILD_TASKS)
        .map(|t| {
            let wallets = core.wallets().clone();
            let m = merchants[t % MERCHANTS];
            tokio::spawn(child_task(wallets, m, run, t, deadline))
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    core.shutdown().await;
    store.close();
    emit("done");
}

// --------------------------------------------------------------- parent --

/// What one child acknowledged before it died.
#[derive(Default)]
struct Acks {
    ready: bool,
    payins: Vec<(UserId, PaymentId)>,
    /// Pay-ins acknowledged again by an Idempotency-Key replay.
    replays: Vec<(UserId, PaymentId)>,
    payouts: Vec<(UserId, PayoutId)>,
    errors: Vec<String>,
}

fn parse(lines: &[String]) -> Acks {
    let mut acks = Acks::default();
    for line in lines {
        let Some(at) = line.find(MARK) else { continue };
        let body = line[at + MARK.len()..].trim_end();
        let words: Vec<&str> = body.split(' ').collect();
        match words.as_slice() {
            ["ready"] => acks.ready = true,
            ["payin", m, id] => acks.payins.push((m.parse().unwrap(), id.parse().unwrap())),
            ["replay", m, id] => acks.replays.push((m.parse().unwrap(), id.parse().unwrap())),
            ["payout", m, id] => acks.payouts.push((m.parse().unwrap(), id.parse().unwrap())),
            ["done"] => {}
            _ if body.starts_with("error") => acks.errors.push(body.to_owned()),
            _ => panic!("unexpected line from the child: {line:?}"),
        }
    }
    acks
}

fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(4_000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}

/// Runs one child until a random kill; returns the complete lines it wrote.
fn run_child(dir: &Path, cycle: u32, rng: &mut SmallRng) -> Vec<String> {
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
    let (tx, rx) = mpsc::channel::<String>();
    // Reads until EOF (the child is dead), so nothing written before the
    // kill is lost; a last line without its newline was cut and is dropped.
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
    // Most cycles kill the workload; every fourth may kill start-up
    // (recovery, merchant creation, core start) too.
    let kill_during_startup = cycle % 4 == 3;
    if !kill_during_startup {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.contains(&format!("{MARK}ready"));
                    lines.push(line);
                    if ready {
                        break;
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!(
                        "cycle {cycle}: child never became ready ({e:?}, {status:?}); stderr:\n{}",
                        stderr_tail(&stderr_path)
                    );
                }
            }
        }
    }
    std::thread::sleep(Duration::from_millis(rng.random_range(50..=400)));
    if let Some(status) = child.try_wait().unwrap() {
        panic!(
            "cycle {cycle}: child exited by itself ({status}); stderr:\n{}",
            stderr_tail(&stderr_path)
        );
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}

/// Everything the checks learnt so far, carried from cycle to cycle.
#[derive(Default)]
struct History {
    acked_payins: HashMap<PaymentId, UserId>,
    acked_payouts: HashMap<PayoutId, UserId>,
    /// Pay-ins whose replayed response said they exist.
    acked_replays: HashMap<PaymentId, UserId>,
    /// Every record seen in storage, with the status it had.
    payins: HashMap<PaymentId, PaymentStatus>,
    payouts: HashMap<PayoutId, PayoutStatus>,
}

#[derive(Debug, Default)]
struct Counts {
    payins: [usize; 3],
    payouts: [usize; 3],
    pending_rows: usize,
}

fn all_payments(store: &Store) -> Vec<Payment> {
    let page = store
        .list_all(
            Space::Payments,
            None,
            None,
            None,
            usize::MAX,
            usize::MAX,
            |_| Ok(true),
        )
        .unwrap();
    assert_eq!(page.next, None);
    page.ids
        .iter()
        .map(|id| {
            store
                .payment(&PaymentId::from_bytes(*id))
                .unwrap()
                .expect("listed payment reads")
        })
        .collect()
}

fn all_payouts(store: &Store) -> Vec<Payout> {
    let page = store
        .list_all(
            Space::Payouts,
            None,
            None,
            None,
            usize::MAX,
            usize::MAX,
            |_| Ok(true),
        )
        .unwrap();
    assert_eq!(page.next, None);
    page.ids
        .iter()
        .map(|id| {
            store
                .payout(&PayoutId::from_bytes(*id))
                .unwrap()
                .expect("listed payout reads")
        })
        .collect()
}

fn index_set(store: &Store, tag: IndexTag, owner: &UserId) -> HashSet<[u8; 16]> {
    let page = store
        .list_index(tag, owner, None, None, None, usize::MAX, usize::MAX, |_| {
            Ok(true)
        })
        .unwrap();
    assert_eq!(page.next, None);
    let set: HashSet<[u8; 16]> = page.ids.iter().copied().collect();
    assert_eq!(set.len(), page.ids.len(), "{tag:?} lists an id twice");
    set
}

fn sum(amounts: impl Iterator<Item = u64>) -> u64 {
    amounts.sum()
}

/// Checks one merchant's wallet, ledger and records against each other.
fn check_merchant(
    store: &Store,
    m: &UserId,
    payments: &[&Payment],
    payouts: &[&Payout],
    pending_rows: &HashSet<(u8, [u8; 16])>,
    when: &str,
) {
    let Some(wallet) = store.wallet(m, domain::Currency::Inr).unwrap() else {
        assert!(
            payments.is_empty() && payouts.is_empty(),
            "{when}: merchant {m} has records but no wallet"
        );
        assert!(store.ledger(m, 1, usize::MAX).unwrap().is_empty());
        return;
    };
    common::audit(store, m);
    let entries = store.ledger(m, 1, usize::MAX).unwrap();

    // Ledger entries per (kind, record): at most one of each.
    let mut per_record: HashMap<(TransferKind, String), u64> = HashMap::new();
    for e in &entries {
        assert_eq!(e.merchant_id, *m);
        let previous = per_record.insert((e.kind, e.reference.clone()), e.amount.paise());
        assert!(
            previous.is_none(),
            "{when}: {m}: two {:?} entries for {}",
            e.kind,
            e.reference
        );
    }
    let mut explained = 0;
    let mut entry = |kind: TransferKind, reference: String, want: Option<u64>| {
        let got = per_record.get(&(kind, reference.clone())).copied();
        assert_eq!(got, want, "{when}: {m}: {kind:?} entry of {reference}");
        explained += usize::from(got.is_some());
    };

    let mut order_ids = HashSet::new();
    for p in payments {
        assert!(
            order_ids.insert(p.order_id.as_str()),
            "{when}: {m}: order id {} used twice",
            p.order_id
        );
        assert_eq!(
            store.unique(m, UniqueKind::OrderId, &p.order_id).unwrap(),
            Some(*p.id.as_bytes()),
            "{when}: order id {} does not point at {}",
            p.order_id,
            p.id
        );
        assert_eq!(p.fee.paise() + p.net_amount.paise(), p.amount.paise());
        let completed = p.status == PaymentStatus::Completed;
        let credit = completed.then(|| p.net_amount.paise()).filter(|&v| v > 0);
        let fee = completed.then(|| p.fee.paise()).filter(|&v| v > 0);
        entry(TransferKind::PayinCredit, p.id.to_string(), credit);
        entry(TransferKind::PayinFee, p.id.to_string(), fee);
        if p.status == PaymentStatus::Pending {
            assert!(
                pending_rows.contains(&(PendingKind::Payin.tag(), *p.id.as_bytes())),
                "{when}: pending {} has no Pending row: it would never settle",
                p.id
            );
        }
    }
    for p in payouts {
        if let Some(reference) = &p.reference_id {
            assert_eq!(
                store.unique(m, UniqueKind::ReferenceId, reference).unwrap(),
                Some(*p.id.as_bytes())
            );
        }
        let hold = p.amount.paise() + p.fee.paise();
        let id = p.id.to_string();
        entry(TransferKind::PayoutHold, id.clone(), Some(hold));
        let (settle, fee, release) = match p.status {
            PayoutStatus::Pending => {
                assert!(
                    pending_rows.contains(&(PendingKind::Payout.tag(), *p.id.as_bytes())),
                    "{when}: pending {} has no Pending row: it would never settle",
                    p.id
                );
                (None, None, None)
            }
            PayoutStatus::Processed => (
                Some(p.amount.paise()),
                Some(p.fee.paise()).filter(|&v| v > 0),
                None,
            ),
            PayoutStatus::Rejected => (None, None, Some(hold)),
            PayoutStatus::Queued | PayoutStatus::Cancelled | PayoutStatus::Reversed => {
                panic!("{when}: this test makes no {} payout", p.status.as_str())
            }
        };
        entry(TransferKind::PayoutSettle, id.clone(), settle);
        entry(TransferKind::PayoutFee, id.clone(), fee);
        entry(TransferKind::PayoutRelease, id, release);
    }
    assert_eq!(
        explained,
        entries.len(),
        "{when}: {m}: ledger entries for records that do not exist"
    );

    let with = |s: PaymentStatus| payments.iter().filter(move |p| p.status == s);
    let processed = || {
        payouts
            .iter()
            .filter(|p| p.status == PayoutStatus::Processed)
    };
    assert_eq!(
        wallet.pending_payins.paise(),
        sum(with(PaymentStatus::Pending).map(|p| p.amount.paise())),
        "{when}: {m}: pending_payins is not the sum of pending pay-ins"
    );
    assert_eq!(
        wallet.total_payins.paise(),
        sum(with(PaymentStatus::Completed).map(|p| p.amount.paise())),
        "{when}: {m}: total_payins"
    );
    assert_eq!(
        wallet.total_payouts.paise(),
        sum(processed().map(|p| p.amount.paise())),
        "{when}: {m}: total_payouts"
    );
    assert_eq!(
        wallet.total_fees.paise(),
        sum(with(PaymentStatus::Completed).map(|p| p.fee.paise()))
            + sum(processed().map(|p| p.fee.paise())),
        "{when}: {m}: total_fees"
    );
    assert_eq!(
        wallet.held.paise(),
        sum(payouts
            .iter()
            .filter(|p| p.status == PayoutStatus::Pending)
            .map(|p| p.amount.paise() + p.fee.paise())),
        "{when}: {m}: held is not the sum of pending payouts"
    );

    // Listings: exactly the merchant's records, each once.
    let ids = |v: &[&Payment]| v.iter().map(|p| *p.id.as_bytes()).collect::<HashSet<_>>();
    assert_eq!(
        index_set(store, IndexTag::PaymentsByMerchant, m),
        ids(payments),
        "{when}: {m}: payments listing"
    );
    // The merchant made them all itself: no by-creator rows (that listing
    // is read for api_users only).
    assert!(index_set(store, IndexTag::PaymentsByCreator, m).is_empty());
    let payout_ids: HashSet<_> = payouts.iter().map(|p| *p.id.as_bytes()).collect();
    assert_eq!(
        index_set(store, IndexTag::PayoutsByMerchant, m),
        payout_ids,
        "{when}: {m}: payouts listing"
    );
    assert!(index_set(store, IndexTag::PayoutsByCreator, m).is_empty());
}

/// Opens the store left behind and checks everything; closes it again.
fn check_store(dir: &Path, history: &mut History, when: &str) -> Counts {
    let store = common::open(&db_dir(dir), Durability::Sync);
    // Opening applied the whole journal tail the kill left behind.
    assert_eq!(
        store.count(Space::Journal).unwrap(),
        0,
        "{when}: journal records left unapplied after open"
    );
    let merchants = read_merchants(dir).unwrap_or_default();
    let payments = all_payments(&store);
    let payouts = all_payouts(&store);
    let pending = store.due_pending(i64::MAX, usize::MAX).unwrap();
    let pending_rows: HashSet<(u8, [u8; 16])> =
        pending.iter().map(|i| (i.kind.tag(), i.record)).collect();
    assert_eq!(
        pending_rows.len(),
        pending.len(),
        "{when}: Pending row twice"
    );
    let mut counts = Counts {
        pending_rows: pending.len(),
        ..Counts::default()
    };

    let payment_by_id: HashMap<PaymentId, &Payment> = payments.iter().map(|p| (p.id, p)).collect();
    let payout_by_id: HashMap<PayoutId, &Payout> = payouts.iter().map(|p| (p.id, p)).collect();
    for (id, m) in &history.acked_payins {
        let p = payment_by_id
            .get(id)
            .unwrap_or_else(|| panic!("{when}: acknowledged pay-in {id} is lost"));
        assert_eq!(p.merchant_id, *m, "{when}: {id} changed merchant");
    }
    for (id, m) in &history.acked_replays {
        let p = payment_by_id.get(id).unwrap_or_else(|| {
            panic!("{when}: pay-in {id}, acknowledged by an idempotent replay, is lost")
        });
        assert_eq!(p.merchant_id, *m, "{when}: {id} changed merchant");
    }
    for (id, m) in &history.acked_payouts {
        let p = payout_by_id
            .get(id)
            .unwrap_or_else(|| panic!("{when}: acknowledged payout {id} is lost"));
        assert_eq!(p.merchant_id, *m, "{when}: {id} changed merchant");
    }
    for (id, before) in &history.payins {
        let now = payment_by_id
            .get(id)
            .unwrap_or_else(|| panic!("{when}: pay-in {id}, seen before, is gone"))
            .status;
        assert!(
            *before == PaymentStatus::Pending || now == *before,
            "{when}: {id} went from {before:?} to {now:?}"
        );
    }
    for (id, before) in &history.payouts {
        let now = payout_by_id
            .get(id)
            .unwrap_or_else(|| panic!("{when}: payout {id}, seen before, is gone"))
            .status;
        assert!(
            *before == PayoutStatus::Pending || now == *before,
            "{when}: {id} went from {before:?} to {now:?}"
        );
    }
    for p in &payments {
        assert!(
            merchants.contains(&p.merchant_id),
            "{when}: {} of unknown merchant",
            p.id
        );
        counts.payins[p.status as usize] += 1;
        history.payins.insert(p.id, p.status);
    }
    for p in &payouts {
        assert!(merchants.contains(&p.merchant_id));
        counts.payouts[p.status as usize] += 1;
        history.payouts.insert(p.id, p.status);
    }
    for item in &pending {
        assert!(merchants.contains(&item.merchant_id));
    }

    for m in &merchants {
        if store.user(m).unwrap().is_none() {
            // Killed between writing merchants.txt and the user records.
            assert!(payments.iter().all(|p| p.merchant_id != *m));
            continue;
        }
        let mine: Vec<&Payment> = payments.iter().filter(|p| p.merchant_id == *m).collect();
        let my_payouts: Vec<&Payout> = payouts.iter().filter(|p| p.merchant_id == *m).collect();
        check_merchant(&store, m, &mine, &my_payouts, &pending_rows, when);
    }
    store.close();
    counts
}

#[test]
fn kill9_crash_loop_keeps_acknowledged_writes_and_balanced_books() {
    if std::env::var_os(CHILD_DIR_ENV).is_some() {
        return; // this process is a child
    }
    let started = Instant::now();
    let seed: u64 = std::env::var("TIJORI_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("crash loop seed {seed} (replay the kill timings with TIJORI_CRASH_SEED={seed})");
    let mut rng = SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::default();
    let mut cycles_with_acks = 0;

    for cycle in 0..CYCLES {
        let lines = run_child(dir.path(), cycle, &mut rng);
        let acks = parse(&lines);
        assert!(
            acks.errors.is_empty(),
            "cycle {cycle}: the child saw errors: {:?}",
            acks.errors
        );
        for (m, id) in &acks.payins {
            assert!(
                history.acked_payins.insert(*id, *m).is_none(),
                "{id} acknowledged twice"
            );
        }
        for (m, id) in &acks.replays {
            history.acked_replays.insert(*id, *m);
        }
        for (m, id) in &acks.payouts {
            assert!(
                history.acked_payouts.insert(*id, *m).is_none(),
                "{id} acknowledged twice"
            );
        }
        cycles_with_acks += usize::from(!acks.payins.is_empty());
        let counts = check_store(dir.path(), &mut history, &format!("after kill {cycle}"));
        println!(
            "cycle {cycle:2}: ready={} acked {} pay-ins ({} replays), {} payouts; stored pay-ins \
             pending/completed/failed {:?}, payouts pending/processed/rejected {:?}, \
             pending rows {}",
            acks.ready,
            acks.payins.len(),
            acks.replays.len(),
            acks.payouts.len(),
            counts.payins,
            counts.payouts,
            counts.pending_rows
        );
    }
    // The loop must have exercised something, or it proved nothing.
    assert!(
        cycles_with_acks >= CYCLES as usize / 2,
        "only {cycles_with_acks} of {CYCLES} children acknowledged anything"
    );
    assert!(!history.acked_payouts.is_empty(), "no payout was ever made");

    // A clean start settles everything the crashes left pending.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = common::open(&db_dir(dir.path()), Durability::Sync);
        let core = common::start(&store, common::config(5)).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while store.pending_count().unwrap() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = store.pending_count().unwrap();
        core.shutdown().await;
        store.close();
        assert_eq!(left, 0, "pending rows never settled after the crashes");
    });
    let counts = check_store(dir.path(), &mut history, "after the final settlement");
    println!("final: {counts:?}");
    assert_eq!(counts.payins[PaymentStatus::Pending as usize], 0);
    assert_eq!(counts.payouts[PayoutStatus::Pending as usize], 0);
    assert_eq!(counts.pending_rows, 0);
    println!(
        "{} acknowledged pay-ins, {} payouts survived {CYCLES} kills in {:?}",
        history.acked_payins.len(),
        history.acked_payouts.len(),
        started.elapsed()
    );
}

/// A raw write set big enough that its round's fsync takes a while. Its keys
/// sit under a merchant that does not exist, so no reader ever meets them.
fn big_write_set(owner: &UserId, tag: u8) -> storage::WriteSet {
    let mut writes = storage::WriteSet::new();
    for i in 0u32..2_000 {
        let reference = format!("big-{tag}-{i}");
        writes.put_raw(
            Space::Unique,
            storage::keys::unique(owner, UniqueKind::ReferenceId, &reference),
            vec![tag; 8_192],
        );
    }
    writes
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// SPEC §5: a response that says money moved is sent only once the change
/// is durable. A payout's write is held in a commit round whose fsync is
/// slow (a big write set shares it); while that round is visible but not yet
/// durable, the same request is retried with its Idempotency-Key. The replay
/// must not be answered before the round's fsync has finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_replay_is_not_acknowledged_before_the_original_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), Durability::Sync);
    let core = common::start(&store, common::config(5)).await;
    let wallets = core.wallets();
    let m = common::merchant(&store, 0, 0).await;
    wallets
        .create_payin(m, common::payin("funds", 10_000_000, m))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while wallets.balance(m).await.unwrap().available.paise() == 0 {
        assert!(Instant::now() < deadline, "funding pay-in never settled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let nobody = UserId::new();

    let mut checked = 0;
    for attempt in 0u8..20 {
        // Round A: the committer is busy fsyncing it once it is applied...
        let a = store
            .submit(big_write_set(&nobody, 2 * attempt))
            .await
            .unwrap();
        until("round A applied", || store.applied_seq() >= a.seq()).await;
        // ...so the big B and the payout's write queue up and share round B.
        let b = store
            .submit(big_write_set(&nobody, 2 * attempt + 1))
            .await
            .unwrap();
        let key = format!("replay-{attempt}");
        let mut new = common::payout(1_000, "123456789012", m);
        new.idempotency = Some(Idempotency {
            key: key.clone(),
            fingerprint: "same body".into(),
            fields: Vec::new(),
        });
        let first = tokio::spawn({
            let (wallets, new) = (wallets.clone(), new.clone());
            async move { wallets.create_payout(m, new).await }
        });
        let idem_key = storage::keys::idempotency(&m, &m, &key);
        until("the payout's round applied", || {
            store
                .get_raw(Space::Idempotency, &idem_key)
                .unwrap()
                .is_some()
        })
        .await;
        // The payout's write set is visible, so its sequence is at most
        // this. SPEC §19: a round becomes visible only after its fsync, so
        // what any read can see is already durable.
        let visible_seq = store.applied_seq();
        assert!(
            store.durable_seq() >= visible_seq,
            "attempt {attempt}: round {visible_seq} is visible but only {} is durable",
            store.durable_seq()
        );
        let retry = wallets.create_payout(m, new).await.unwrap();
        assert!(retry.replayed);
        checked += 1;
        let original = first.await.unwrap().unwrap();
        assert!(!original.replayed);
        b.durable().await.unwrap();
        a.durable().await.unwrap();
    }
    assert_eq!(checked, 20, "every attempt checked");
    core.shutdown().await;
    store.close();
}
