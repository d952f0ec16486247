#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The storage crate on its own, on a real fjall store in a temp dir.
//!
//! Proves that: what `commit` acknowledged is read back byte-identical after
//! close (or a plain drop) and reopen, in every space, with overwrites and
//! removes applied and nothing extra; concurrent `submit`s all resolve, get
//! each sequence number exactly once, and share fsyncs (group commit) within
//! `commit_batch_max`; pipelined writes to one key keep the last one; a
//! write is readable once `applied_seq` reaches its ticket (what writers
//! that remember their unapplied writes rely on); `applied_barrier` waits for earlier submits; the
//! `Pending` and `Index` scans honour their bounds, order, cursor and limits;
//! and a closed store refuses writes instead of hanging, after making what
//! was queued before `close` durable. A backup taken under writes restores
//! to exactly the write sets up to its sequence; backups and restores
//! refuse unsafe targets, partial or damaged backups, and a second backup
//! at once; a data dir in use is refused by name.

use domain::UserId;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;
use storage::backup::{read_manifest, restore, BackupError, BackupLimits, MANIFEST_FILE};
use storage::keys::{self, IndexTag};
use storage::{Durability, PendingKind, Space, StorageError, Store, StoreConfig, Ticket, WriteSet};

/// Upper bound for anything awaited here: a hang is a failure, not a stall.
const WAIT: Duration = Duration::from_secs(30);

fn open(dir: &Path) -> Store {
    Store::open(dir, StoreConfig::default()).expect("store opens")
}

fn open_with(dir: &Path, commit_queue_depth: usize, commit_batch_max: usize) -> Store {
    Store::open(
        dir,
        StoreConfig {
            durability: Durability::Sync,
            commit_queue_depth,
            commit_batch_max,
            ..StoreConfig::default()
        },
    )
    .expect("store opens")
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {WAIT:?}"))
}

/// splitmix64: a small seeded generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn seed() -> u64 {
    let seed = std::env::var("TIJORI_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    println!("seed {seed} (replay with TIJORI_TEST_SEED={seed})");
    seed
}

/// Last written value per key; `None` is a removed key.
type Model = HashMap<(Space, Vec<u8>), Option<Vec<u8>>>;

fn value(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(20) {
        0..=1 => 0,
        2..=13 => 1 + rng.below(63),
        14..=18 => 64 + rng.below(2_000),
        _ => 2_048 + rng.below(40_000),
    };
    rng.bytes(len as usize)
}

/// `sets` random write sets for writer `writer`, each committed and awaited
/// before the next; keys are unique to the writer so writers never race.
/// Covers every space, empty and large values, overwrites, removes, and
/// the same key written twice inside one write set (the last op wins).
async fn write_random(store: Store, writer: u8, sets: usize, seed: u64) -> Model {
    let mut rng = Rng(seed ^ (u64::from(writer) << 56));
    let mut model = Model::new();
    let mut live: Vec<(Space, Vec<u8>)> = Vec::new();
    let mut made: u32 = 0;
    for _ in 0..sets {
        let mut writes = WriteSet::new();
        for _ in 0..1 + rng.below(6) {
            let roll = rng.below(100);
            let (space, key, v) = if roll < 65 || live.len() < 8 {
                made += 1;
                let space = Space::DATA[rng.below(Space::DATA.len() as u64) as usize];
                let mut key = vec![writer];
                key.extend_from_slice(&made.to_be_bytes());
                let tail = rng.below(48) as usize;
                key.extend(rng.bytes(tail));
                live.push((space, key.clone()));
                (space, key, Some(value(&mut rng)))
            } else {
                let (space, key) = live[rng.below(live.len() as u64) as usize].clone();
                let v = if roll < 85 {
                    Some(value(&mut rng))
                } else {
                    None
                };
                (space, key, v)
            };
            match &v {
                Some(bytes) => writes.put_raw(space, key.clone(), bytes.clone()),
                None => writes.remove(space, key.clone()),
            }
            if rng.below(10) == 0 {
                // The same key again in the same write set: this op wins.
                let again = value(&mut rng);
                writes.put_raw(space, key.clone(), again.clone());
                model.insert((space, key), Some(again));
            } else {
                model.insert((space, key), v);
            }
        }
        store.commit(writes).await.expect("commit is acknowledged");
    }
    model
}

fn assert_matches(store: &Store, model: &Model, when: &str) {
    let mut live_per_space: HashMap<Space, usize> = HashMap::new();
    for ((space, key), want) in model {
        let got = store.get_raw(*space, key).unwrap();
        assert!(
            got == *want,
            "{when}: {space:?} key {key:02x?}: stored {:?} bytes, want {:?} bytes (or contents differ)",
            got.as_ref().map(Vec::len),
            want.as_ref().map(Vec::len),
        );
        if want.is_some() {
            *live_per_space.entry(*space).or_default() += 1;
        }
    }
    for space in Space::DATA {
        assert_eq!(
            store.count(space).unwrap(),
            live_per_space.get(&space).copied().unwrap_or(0),
            "{when}: {space:?} holds records nobody wrote (or lost some)"
        );
    }
}

async fn write_all(store: &Store, writers: u8, sets: usize, seed: u64) -> Model {
    let tasks: Vec<_> = (0..writers)
        .map(|w| tokio::spawn(write_random(store.clone(), w, sets, seed)))
        .collect();
    let mut model = Model::new();
    for task in tasks {
        model.extend(within("writer", task).await.unwrap());
    }
    model
}

/// (a) write → close → reopen → compare; then more writes → plain drop →
/// reopen → compare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_writes_read_back_identical_after_reopen() {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut model = write_all(&store, 8, 400, seed).await; // 3,200 write sets
    assert_matches(&store, &model, "before close");
    store.close();
    drop(store);

    let store = open(dir.path());
    assert_matches(&store, &model, "after close and reopen");
    // Keys 8.. are new writers: disjoint from the first round's keys.
    let tasks: Vec<_> = (8..12)
        .map(|w| tokio::spawn(write_random(store.clone(), w, 100, seed ^ 1)))
        .collect();
    for task in tasks {
        model.extend(within("writer", task).await.unwrap());
    }
    // No close: a dropped store must leave acknowledged writes behind and
    // release the directory for the next open.
    drop(store);
    let store = open(dir.path());
    assert_matches(&store, &model, "after drop and reopen");
    store.close();
}

/// (b) many concurrent submitters, `Durability::Sync`: every ticket
/// resolves, sequence numbers are handed out once each, fsyncs are shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submits_share_group_commits() {
    const TASKS: u64 = 64;
    const PER_TASK: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                let mut tickets: Vec<Ticket> = Vec::new();
                for i in 0..PER_TASK {
                    let mut writes = WriteSet::new();
                    let key = [t.to_be_bytes(), i.to_be_bytes()].concat();
                    writes.put_raw(Space::Payments, key.clone(), key.repeat(3));
                    writes.put_raw(Space::Index, key.clone(), Vec::new());
                    let ticket = store.submit(writes).await.expect("submit");
                    seqs.push(ticket.seq());
                    // Odd tasks pipeline their submits; even ones wait for each.
                    if t % 2 == 0 {
                        ticket.durable().await.expect("durable");
                    } else {
                        tickets.push(ticket);
                    }
                }
                for ticket in tickets {
                    ticket.durable().await.expect("durable");
                }
                seqs
            })
        })
        .collect();
    let mut seqs = HashSet::new();
    for task in tasks {
        for seq in within("submitter", task).await.unwrap() {
            assert!(seqs.insert(seq), "sequence {seq} handed out twice");
        }
    }
    let n = TASKS * PER_TASK;
    assert_eq!(seqs.len() as u64, n);
    assert_eq!(
        (seqs.iter().min().copied(), seqs.iter().max().copied()),
        (Some(1), Some(n))
    );
    assert!(store.applied_seq() >= n, "every resolved ticket is applied");

    let stats = store.stats();
    let rounds = stats.rounds.load(std::sync::atomic::Ordering::Relaxed);
    let sets = stats.write_sets.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(sets, n, "every write set counted once");
    assert!(
        (1..n).contains(&rounds),
        "{rounds} commit rounds for {n} write sets: no group commit happened"
    );
    println!("{n} write sets in {rounds} rounds");

    for t in 0..TASKS {
        for i in 0..PER_TASK {
            let key = [t.to_be_bytes(), i.to_be_bytes()].concat();
            assert_eq!(
                store.get_raw(Space::Payments, &key).unwrap(),
                Some(key.repeat(3))
            );
            assert_eq!(store.get_raw(Space::Index, &key).unwrap(), Some(Vec::new()));
        }
    }
    assert_eq!(store.count(Space::Payments).unwrap() as u64, n);
    store.close();
}

/// (b) with a tiny queue and batch limit: submitters wait for room instead
/// of failing, and no round folds more than `commit_batch_max` write sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_queue_applies_backpressure_and_caps_batches() {
    const TASKS: u64 = 16;
    const PER_TASK: u64 = 25;
    const BATCH_MAX: u64 = 3;
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), 2, BATCH_MAX as usize);
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tickets = Vec::new();
                for i in 0..PER_TASK {
                    let mut writes = WriteSet::new();
                    writes.put_raw(
                        Space::Outbox,
                        [t.to_be_bytes(), i.to_be_bytes()].concat(),
                        vec![t as u8; 10],
                    );
                    tickets.push(store.submit(writes).await.expect("submit waits, not fails"));
                }
                for ticket in tickets {
                    ticket.durable().await.expect("durable");
                }
            })
        })
        .collect();
    for task in tasks {
        within("submitter", task).await.unwrap();
    }
    let n = TASKS * PER_TASK;
    let rounds = store
        .stats()
        .rounds
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        rounds >= n.div_ceil(BATCH_MAX),
        "{rounds} rounds for {n} write sets exceeds commit_batch_max {BATCH_MAX}"
    );
    assert_eq!(store.count(Space::Outbox).unwrap() as u64, n);
    store.close();
}

/// Pipelined writes to one key (the wallet's pattern: many write sets in one
/// round, all touching the wallet record): the last submitted value wins,
/// before and after reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_writes_to_one_key_keep_the_last() {
    const N: u32 = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut tickets = Vec::new();
    for i in 0..N {
        let mut writes = WriteSet::new();
        writes.put_raw(Space::Wallets, b"hot".to_vec(), i.to_be_bytes().to_vec());
        // Remove and re-add a second key, so tombstones share rounds too.
        if i % 2 == 0 {
            writes.remove(Space::Ledger, b"flip".to_vec());
        } else {
            writes.put_raw(Space::Ledger, b"flip".to_vec(), i.to_be_bytes().to_vec());
        }
        tickets.push(store.submit(writes).await.unwrap());
    }
    for ticket in tickets {
        within("ticket", ticket.durable()).await.unwrap();
    }
    let rounds = store
        .stats()
        .rounds
        .load(std::sync::atomic::Ordering::Relaxed);
    println!("{N} pipelined write sets in {rounds} rounds");
    let check = |store: &Store, when: &str| {
        assert_eq!(
            store.get_raw(Space::Wallets, b"hot").unwrap(),
            Some((N - 1).to_be_bytes().to_vec()),
            "{when}: an earlier write to the hot key won"
        );
        assert_eq!(
            store.get_raw(Space::Ledger, b"flip").unwrap(),
            Some((N - 1).to_be_bytes().to_vec()),
            "{when}: the last put after removes was lost"
        );
    };
    check(&store, "live");
    store.close();
    drop(store);
    let store = open(dir.path());
    check(&store, "after reopen");
    store.close();
}

/// A write set big enough that the committer is busy with it for a while.
fn big_write_set(tag: u8) -> WriteSet {
    let mut writes = WriteSet::new();
    for i in 0u32..2_000 {
        let mut key = vec![b'~', tag];
        key.extend_from_slice(&i.to_be_bytes());
        writes.put_raw(Space::Outbox, key, vec![tag; 8_192]);
    }
    writes
}

/// (c) with the real committer: a write sits behind a big write set, so
/// it is sometimes caught unapplied; whenever `applied_seq` has reached its
/// ticket it is readable (a writer may then forget its own copy), and its
/// ticket resolves only once it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_readable_once_applied_seq_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut seen_unapplied = 0;
    for attempt in 0u8..5 {
        let big = store.submit(big_write_set(attempt)).await.unwrap();
        let key = vec![b'k', attempt];
        let mut writes = WriteSet::new();
        writes.put_raw(Space::Payouts, key.clone(), vec![attempt; 32]);
        let ticket = store.submit(writes).await.unwrap();
        assert!(ticket.seq() > big.seq());

        // Order matters: applied first, then the read.
        let applied = store.applied_seq();
        let raw = store.get_raw(Space::Payouts, &key).unwrap();
        if applied < ticket.seq() {
            seen_unapplied += 1;
        } else {
            assert_eq!(raw, Some(vec![attempt; 32]), "applied but not readable");
        }

        let seq = ticket.seq();
        within("ticket", ticket.durable()).await.unwrap();
        within("big ticket", big.durable()).await.unwrap();
        assert!(store.applied_seq() >= seq);
        assert_eq!(
            store.get_raw(Space::Payouts, &key).unwrap(),
            Some(vec![attempt; 32]),
            "durable but not readable"
        );
    }
    assert!(
        seen_unapplied > 0,
        "never caught a write before it was applied: the test proved nothing"
    );
    store.close();
}

/// (d) `applied_barrier` resolves only once everything submitted before it
/// is readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_barrier_waits_for_earlier_submits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    within("barrier on an idle store", store.applied_barrier())
        .await
        .unwrap();

    for round in 0u8..3 {
        let mut tickets = vec![store.submit(big_write_set(round)).await.unwrap()];
        let mut small = Vec::new();
        for i in 0u8..50 {
            let key = vec![b's', round, i];
            let mut writes = WriteSet::new();
            writes.put_raw(Space::Idempotency, key.clone(), vec![i]);
            tickets.push(store.submit(writes).await.unwrap());
            small.push((key, i));
        }
        let last = tickets.last().map(Ticket::seq).unwrap();
        within("barrier", store.applied_barrier()).await.unwrap();
        assert!(
            store.applied_seq() >= last,
            "barrier resolved at applied seq {} before seq {last}",
            store.applied_seq()
        );
        for (key, i) in &small {
            assert_eq!(
                store.get_raw(Space::Idempotency, key).unwrap(),
                Some(vec![*i]),
                "barrier resolved before an earlier write was readable"
            );
        }
        let mut big_key = vec![b'~', round];
        big_key.extend_from_slice(&1_999u32.to_be_bytes());
        assert!(store.get_raw(Space::Outbox, &big_key).unwrap().is_some());
        for ticket in tickets {
            within("ticket", ticket.durable()).await.unwrap();
        }
    }
    store.close();
}

/// (e) `due_pending`: only rows due at or before `now`, oldest first (ties
/// by kind, then record), decoded; `limit` honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_pending_returns_due_rows_in_due_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (m1, m2) = (UserId::new(), UserId::new());
    let base: i64 = 1_760_000_000_000;
    // (due offset, kind, record byte, merchant), written in scrambled order.
    let rows = [
        (50, PendingKind::Payin, 1u8, m1),
        (10, PendingKind::Payout, 2, m2),
        (30, PendingKind::Payin, 3, m1),
        (10, PendingKind::Payin, 4, m1),
        (10, PendingKind::Payin, 0, m2),
        (70, PendingKind::Payout, 5, m2),
        (100, PendingKind::Payin, 6, m1),
    ];
    let mut writes = WriteSet::new();
    for (offset, kind, record, merchant) in rows {
        writes.put_raw(
            Space::Pending,
            keys::pending(base + offset, kind.tag(), &[record; 16]).to_vec(),
            merchant.as_bytes().to_vec(),
        );
    }
    store.commit(writes).await.unwrap();
    assert_eq!(store.pending_count().unwrap(), rows.len());

    let mut expected = rows.to_vec();
    expected.sort_by_key(|(offset, kind, record, _)| (*offset, kind.tag(), *record));
    let due = |now_offset: i64, limit: usize| {
        store
            .due_pending(base + now_offset, limit)
            .unwrap()
            .into_iter()
            .map(|i| (i.due_unix_ms - base, i.kind, i.record[0], i.merchant_id))
            .collect::<Vec<_>>()
    };
    let upto =
        |offset: i64| -> Vec<_> { expected.iter().copied().filter(|r| r.0 <= offset).collect() };

    assert!(due(9, 100).is_empty(), "nothing is due yet");
    assert_eq!(due(10, 100), upto(10), "due exactly at now counts");
    assert_eq!(due(49, 100), upto(49));
    assert_eq!(due(1_000, 100), expected, "all, oldest first");
    assert_eq!(due(1_000, 2), expected[..2].to_vec(), "limit");
    assert_eq!(due(1_000, 0), Vec::new());
    assert_eq!(
        store.due_pending(i64::MAX, usize::MAX).unwrap().len(),
        rows.len()
    );
    // `settled` removes exactly the rows of the items it is given.
    let first_two = store.due_pending(i64::MAX, 2).unwrap();
    let mut writes = WriteSet::new();
    for item in &first_two {
        writes.settled(item.id);
    }
    store.commit(writes).await.unwrap();
    assert_eq!(store.pending_count().unwrap(), rows.len() - 2);
    assert_eq!(due(1_000, 100), expected[2..].to_vec());
    store.close();
}

/// An id whose UUIDv7 millisecond prefix is `ms`, made unique by `tail`.
fn id_at(ms: i64, tail: u8) -> [u8; 16] {
    let mut id = keys::id_floor_at(ms);
    id[6] = 0x70; // version 7, as real ids have
    id[8] = 0x80;
    id[15] = tail;
    id
}

/// (e) `list_index`: newest first; cursor, `[from_ms, to_ms)`, `limit`,
/// `keep` and `scan_max` honoured; other owners and tags never leak in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_index_pages_newest_first_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let owner = UserId::new();
    let other = UserId::new();
    let t0: i64 = 1_760_000_000_000;
    let tag = IndexTag::PaymentsByMerchant;

    // 20 ids 10 ms apart, plus two more sharing the ms of id 7.
    let mut ids: Vec<[u8; 16]> = (0..20).map(|i| id_at(t0 + i * 10, 1)).collect();
    ids.push(id_at(t0 + 70, 0));
    ids.push(id_at(t0 + 70, 9));
    let mut writes = WriteSet::new();
    for id in &ids {
        writes.put_raw(Space::Index, keys::index(tag, &owner, id), Vec::new());
        // Noise: the same id under another owner and another tag.
        writes.put_raw(Space::Index, keys::index(tag, &other, id), Vec::new());
        writes.put_raw(
            Space::Index,
            keys::index(IndexTag::PayoutsByMerchant, &owner, id),
            Vec::new(),
        );
    }
    store.commit(writes).await.unwrap();
    let mut newest_first = ids.clone();
    newest_first.sort();
    newest_first.reverse();

    let list = |from: Option<i64>, to: Option<i64>, before: Option<[u8; 16]>, limit: usize| {
        store
            .list_index(tag, &owner, from, to, before, limit, usize::MAX, |_| {
                Ok(true)
            })
            .unwrap()
    };

    let all = list(None, None, None, 1_000);
    assert_eq!(
        all.ids, newest_first,
        "newest first, only this owner and tag"
    );
    assert_eq!(all.next, None, "everything listed: no cursor");
    let exact = list(None, None, None, ids.len());
    assert_eq!(exact.ids.len(), ids.len());
    assert_eq!(
        exact.next, None,
        "a page ending at the last id has no cursor"
    );

    // Cursor pagination covers everything once, in order.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = list(None, None, cursor, 5);
        assert!(page.ids.len() <= 5);
        paged.extend_from_slice(&page.ids);
        match page.next {
            Some(next) => {
                assert_eq!(Some(&next), page.ids.last(), "cursor is the last id");
                cursor = Some(next);
            }
            None => break,
        }
        assert!(paged.len() <= ids.len(), "pagination does not end");
    }
    assert_eq!(paged, newest_first, "pages skip or repeat ids");

    // [from, to): the id at `to` is out, the ones at `from` (three) are in.
    let window = list(Some(t0 + 70), Some(t0 + 120), None, 1_000).ids;
    let want: Vec<_> = newest_first
        .iter()
        .copied()
        .filter(|id| (keys::id_floor_at(t0 + 70)..keys::id_floor_at(t0 + 120)).contains(id))
        .collect();
    assert_eq!(want.len(), 7);
    assert_eq!(window, want);
    // Bounds and cursor together: the cursor is exclusive.
    let window = list(Some(t0 + 70), Some(t0 + 120), Some(want[2]), 1_000).ids;
    assert_eq!(window, want[3..].to_vec());
    let empty = list(Some(t0 + 500), None, None, 10);
    assert!(empty.ids.is_empty() && empty.next.is_none());

    // keep decides what counts towards the limit.
    let odd: HashSet<[u8; 16]> = newest_first.iter().copied().skip(1).step_by(2).collect();
    let page = store
        .list_index(tag, &owner, None, None, None, 3, usize::MAX, |id| {
            Ok(odd.contains(id))
        })
        .unwrap();
    assert_eq!(
        page.ids,
        vec![newest_first[1], newest_first[3], newest_first[5]]
    );
    assert_eq!(page.next, Some(newest_first[5]));
    // scan_max cuts a scan that keeps nothing; its cursor still moves on.
    let page = store
        .list_index(tag, &owner, None, None, None, 100, 4, |_| Ok(false))
        .unwrap();
    assert!(page.ids.is_empty());
    assert_eq!(
        page.next,
        Some(newest_first[3]),
        "a scan cut by scan_max continues after what it looked at"
    );
    // Following those cursors with a filter finds every kept id once.
    let mut found = Vec::new();
    let mut cursor = None;
    for _ in 0..ids.len() {
        let page = store
            .list_index(tag, &owner, None, None, cursor, 100, 4, |id| {
                Ok(odd.contains(id))
            })
            .unwrap();
        found.extend_from_slice(&page.ids);
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "scan_max pagination does not end");
    let want: Vec<_> = newest_first
        .iter()
        .copied()
        .filter(|id| odd.contains(id))
        .collect();
    assert_eq!(found, want);
    store.close();
}

/// (f) a closed store refuses writes with an error, promptly; writes queued
/// before `close` are made durable first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_store_refuses_writes_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut tickets = Vec::new();
    for i in 0u32..200 {
        let mut writes = WriteSet::new();
        writes.put_raw(Space::Users, i.to_be_bytes().to_vec(), vec![1; 100]);
        tickets.push(store.submit(writes).await.unwrap());
    }
    let clone = store.clone();
    tokio::task::spawn_blocking(move || clone.close())
        .await
        .unwrap();
    for ticket in tickets {
        within("ticket queued before close", ticket.durable())
            .await
            .expect("queued before close, so made durable");
    }

    let mut writes = WriteSet::new();
    writes.put_raw(Space::Users, b"late".to_vec(), vec![2]);
    let refused = within("submit after close", store.submit(writes)).await;
    assert!(
        matches!(refused, Err(StorageError::Closed)),
        "submit after close: {:?}",
        refused.map(|t| t.seq())
    );
    let mut writes = WriteSet::new();
    writes.put_raw(Space::Users, b"late".to_vec(), vec![2]);
    let after = within("commit after close", store.commit(writes)).await;
    assert!(matches!(after, Err(StorageError::Closed)), "{after:?}");
    // Returns (either way) instead of waiting for a committer that is gone.
    let _ = within("barrier after close", store.applied_barrier()).await;
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.count(Space::Users).unwrap(), 200);
    assert_eq!(store.get_raw(Space::Users, b"late").unwrap(), None);
    store.close();
}

/// A commit that fails (a full disk) poisons the store: that write and
/// every later one fail, and nobody waiting for durability or visibility
/// is left hanging — a barrier taken before the failure included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_poisons_the_store_and_wakes_every_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        fail_after_rounds: Some(1),
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config).unwrap();
    let mut first = WriteSet::new();
    first.put_raw(Space::Users, b"first".to_vec(), vec![1]);
    // Durable and visible before the fault: it stays readable.
    within(
        "the first write",
        store.submit(first).await.unwrap().durable(),
    )
    .await
    .unwrap();
    let mut second = WriteSet::new();
    second.put_raw(Space::Users, b"second".to_vec(), vec![2]);
    let second = store.submit(second).await.unwrap();
    let barrier = store.durable_barrier().unwrap();
    let failed = within("the failed write's ticket", second.durable()).await;
    assert!(failed.is_err(), "the second commit failed");
    assert!(!store.is_healthy());
    let barrier = within("a barrier over the failed write", barrier.durable()).await;
    assert!(
        matches!(barrier, Err(StorageError::Poisoned)),
        "{barrier:?}"
    );
    let applied = within(
        "applied_barrier on a poisoned store",
        store.applied_barrier(),
    )
    .await;
    assert!(
        matches!(applied, Err(StorageError::Poisoned)),
        "{applied:?}"
    );
    let mut late = WriteSet::new();
    late.put_raw(Space::Users, b"late".to_vec(), vec![3]);
    let late = within("submit on a poisoned store", store.submit(late)).await;
    assert!(matches!(late, Err(StorageError::Poisoned)));
    assert_eq!(
        store.get_raw(Space::Users, b"first").unwrap(),
        Some(vec![1])
    );
    assert_eq!(store.get_raw(Space::Users, b"second").unwrap(), None);
    store.close();
}

/// A data dir records its format version; a store of another format (or a
/// v1 dir, which has no marker) is refused with both versions named, and
/// nothing in it is touched.
#[test]
fn other_store_formats_are_refused_with_both_versions_named() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let marker = std::fs::read_to_string(dir.path().join("TIJORI_FORMAT")).unwrap();
    assert_eq!(
        marker.trim(),
        format!("tijori-store {}", storage::FORMAT_VERSION)
    );

    let v1 = tempfile::tempdir().unwrap();
    std::fs::write(v1.path().join("version"), b"fjall").unwrap();
    let err = Store::open(v1.path(), StoreConfig::default())
        .err()
        .expect("a v1 dir is refused");
    let text = err.to_string();
    assert!(matches!(err, StorageError::Format(_)), "{err:?}");
    let current = format!("format v{}", storage::FORMAT_VERSION);
    assert!(
        text.contains("format v1") && text.contains(&current),
        "{text}"
    );
    assert!(
        !v1.path().join("TIJORI_FORMAT").exists(),
        "a refused dir was written"
    );

    let newer = storage::FORMAT_VERSION + 1;
    std::fs::write(
        dir.path().join("TIJORI_FORMAT"),
        format!("tijori-store {newer}\n"),
    )
    .unwrap();
    let text = Store::open(dir.path(), StoreConfig::default())
        .err()
        .expect("a newer format is refused")
        .to_string();
    assert!(
        text.contains(&format!("format v{newer}")) && text.contains(&current),
        "{text}"
    );
}

/// Two stages: a write set is durable (its journal record fsynced) before
/// it is visible, and its ticket resolves only once it is both — so a read
/// never shows what a crash could lose, and a read after the ticket sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_become_visible_only_after_they_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        indexer_lag_ms: 300,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config).unwrap();
    let mut writes = WriteSet::new();
    writes.put_raw(Space::Payments, b"lagging".to_vec(), b"v".to_vec());
    let ticket = store.submit(writes).await.unwrap();
    let seq = ticket.seq();
    let deadline = std::time::Instant::now() + WAIT;
    while store.durable_seq() < seq {
        assert!(std::time::Instant::now() < deadline, "never durable");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Durable, and the indexer is still waiting: not visible yet.
    assert!(store.applied_seq() < seq);
    assert_eq!(store.get_raw(Space::Payments, b"lagging").unwrap(), None);
    within("ticket", ticket.durable()).await.unwrap();
    assert!(store.applied_seq() >= seq && store.durable_seq() >= seq);
    assert_eq!(
        store.get_raw(Space::Payments, b"lagging").unwrap(),
        Some(b"v".to_vec())
    );
    store.close();
}

/// The indexer's checkpoint survives a reopen: the journal is empty after a
/// clean close, sequence numbers continue where they stopped, and what was
/// written reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_indexer_checkpoint_carries_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut last = 0;
    for i in 0u8..50 {
        let mut writes = WriteSet::new();
        writes.put_raw(Space::Payments, vec![i], vec![i; 3]);
        let ticket = store.submit(writes).await.unwrap();
        last = ticket.seq();
        within("ticket", ticket.durable()).await.unwrap();
    }
    assert_eq!(last, 50);
    store.close();
    drop(store);
    let store = reopen_retrying(dir.path()).await;
    assert_eq!(store.count(Space::Journal).unwrap(), 0, "journal applied");
    assert_eq!((store.applied_seq(), store.durable_seq()), (50, 50));
    let mut writes = WriteSet::new();
    writes.put_raw(Space::Payments, vec![200], vec![1]);
    let ticket = store.submit(writes).await.unwrap();
    assert_eq!(ticket.seq(), 51, "sequence numbers continue");
    within("ticket", ticket.durable()).await.unwrap();
    for i in 0u8..50 {
        assert_eq!(
            store.get_raw(Space::Payments, &[i]).unwrap(),
            Some(vec![i; 3])
        );
    }
    store.close();
}

async fn reopen_retrying(dir: &Path) -> Store {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match Store::open(dir, StoreConfig::default()) {
            Ok(store) => return store,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

fn limits() -> BackupLimits {
    BackupLimits {
        time_max: Duration::from_secs(120),
        bytes_max: u64::MAX,
    }
}

/// A write set of the concurrent writers in the backup test: the same key
/// in two spaces, so a half-applied set would show.
fn pair_write(writer: u8, i: u32) -> (WriteSet, Vec<u8>, Vec<u8>) {
    let mut key = vec![0xb0 | writer];
    key.extend_from_slice(&i.to_be_bytes());
    let value = format!("w{writer}-{i}").into_bytes();
    let mut writes = WriteSet::new();
    writes.put_raw(Space::Payments, key.clone(), value.clone());
    writes.put_raw(Space::Ledger, key.clone(), value.clone());
    (writes, key, value)
}

/// (k) A backup taken while writers keep writing is the store as of one
/// sequence S: after a restore, every write set up to S is there whole
/// (with the journal records the lagging indexer had not applied, which
/// recovery applies), none after S, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_writes_restores_exactly_its_sequence() {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreConfig {
            indexer_lag_ms: 3,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let mut model = write_all(&store, 4, 150, seed).await;
    let acknowledged_before = store.durable_seq();

    let writers: Vec<_> = (0..3u8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut written = Vec::new();
                for i in 0..200u32 {
                    let (writes, key, value) = pair_write(w, i);
                    let ticket = store.submit(writes).await.unwrap();
                    written.push((ticket.seq(), key, value));
                    if i % 4 == 0 {
                        within("ticket", ticket.durable()).await.unwrap();
                    } else {
                        drop(ticket);
                    }
                }
                written
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().join("b1");
    let report = {
        let (store, to) = (store.clone(), to.clone());
        within(
            "backup",
            tokio::task::spawn_blocking(move || store.backup(&to, limits())),
        )
        .await
        .unwrap()
        .expect("the backup succeeds")
    };
    let mut written = Vec::new();
    for w in writers {
        written.extend(within("writer", w).await.unwrap());
    }
    within("barrier", store.applied_barrier()).await.unwrap();
    store.close();
    drop(store);

    let s = report.manifest.sequence;
    assert!(s >= acknowledged_before, "S {s} < {acknowledged_before}");
    let (mut inside, mut after) = (0, 0);
    for (seq, key, value) in &written {
        if *seq <= s {
            inside += 1;
            model.insert((Space::Payments, key.clone()), Some(value.clone()));
            model.insert((Space::Ledger, key.clone()), Some(value.clone()));
        } else {
            after += 1;
        }
    }
    println!(
        "backup at seq {s}: {inside} concurrent sets inside, {after} after; {} rows, {} bytes, {:?}, write pause {:?}",
        report.manifest.total_rows(),
        report.manifest.bytes,
        report.duration,
        report.write_pause
    );
    assert_eq!(read_manifest(&to).unwrap(), report.manifest);

    let restored = tempfile::tempdir().unwrap();
    let data = restored.path().join("data");
    let manifest = restore(&to, &data).expect("the restore succeeds");
    assert_eq!(manifest, report.manifest);
    let store = reopen_retrying(&data).await;
    assert_eq!(
        store.applied_seq(),
        s,
        "recovery applies the journal up to S"
    );
    assert_eq!(store.count(Space::Journal).unwrap(), 0);
    assert_matches(&store, &model, "restored backup");
    // The restored store goes on from S.
    let mut writes = WriteSet::new();
    writes.put_raw(Space::Users, vec![9], vec![9]);
    let ticket = store.submit(writes).await.unwrap();
    assert_eq!(ticket.seq(), s + 1);
    within("ticket", ticket.durable()).await.unwrap();
    store.close();
}

/// (l) Refusals: a relative, non-empty or in-store target; a second backup
/// while one runs; a backup past its size limit leaves no manifest; a
/// restore refuses a backup without a manifest, one whose rows do not
/// match its manifest, another format, and a non-empty target; a second
/// open of a data dir in use names the dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_and_restores_refuse_what_they_cannot_do_safely() {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    write_all(&store, 2, 300, seed).await;
    let backups = tempfile::tempdir().unwrap();
    let target = |err: BackupError| matches!(err, BackupError::Target(_));

    let err = store
        .backup(Path::new("relative/dir"), limits())
        .unwrap_err();
    assert!(
        target(err.clone()) && err.to_string().contains("absolute"),
        "{err}"
    );
    let full = backups.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), b"x").unwrap();
    let err = store.backup(&full, limits()).unwrap_err();
    assert!(
        target(err.clone()) && err.to_string().contains("not empty"),
        "{err}"
    );
    let err = store
        .backup(&dir.path().join("inner"), limits())
        .unwrap_err();
    assert!(
        target(err.clone()) && err.to_string().contains("inside the data dir"),
        "{err}"
    );
    assert!(!dir.path().join("inner").exists());

    // Past the size limit: an error naming it, and no manifest.
    let small = backups.path().join("small");
    let tiny = BackupLimits {
        time_max: Duration::from_secs(60),
        bytes_max: 1_000,
    };
    let err = store.backup(&small, tiny).unwrap_err();
    assert!(matches!(err, BackupError::Limit(_)), "{err}");
    assert!(!small.join(MANIFEST_FILE).exists());
    let err = restore(&small, &backups.path().join("r0")).unwrap_err();
    assert!(
        matches!(err, BackupError::Invalid(_)) && err.to_string().contains("not a finished"),
        "{err}"
    );

    // Two at once: one of them is refused as busy.
    let start = std::sync::Arc::new(std::sync::Barrier::new(2));
    let tries: Vec<_> = ["c1", "c2"]
        .into_iter()
        .map(|name| {
            let (store, start) = (store.clone(), start.clone());
            let to = backups.path().join(name);
            std::thread::spawn(move || {
                start.wait();
                store.backup(&to, limits())
            })
        })
        .collect();
    let results: Vec<_> = tries.into_iter().map(|t| t.join().unwrap()).collect();
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(BackupError::Busy)))
        .count();
    let done = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((busy, done), (1, 1), "{results:?}");
    let good = backups
        .path()
        .join(if results[0].is_ok() { "c1" } else { "c2" });

    // A target that is not empty; a manifest that does not match.
    let err = restore(&good, &full).unwrap_err();
    assert!(target(err.clone()), "{err}");
    let manifest_path = good.join(MANIFEST_FILE);
    let original = std::fs::read(&manifest_path).unwrap();
    let mut wrong = read_manifest(&good).unwrap();
    *wrong.rows.get_mut("payments").unwrap() += 1;
    std::fs::write(&manifest_path, serde_json::to_vec(&wrong).unwrap()).unwrap();
    let err = restore(&good, &backups.path().join("r1")).unwrap_err();
    assert!(
        matches!(err, BackupError::Invalid(_)) && err.to_string().contains("payments"),
        "{err}"
    );
    *wrong.rows.get_mut("payments").unwrap() -= 1;
    wrong.store_format += 1;
    std::fs::write(&manifest_path, serde_json::to_vec(&wrong).unwrap()).unwrap();
    let err = restore(&good, &backups.path().join("r2")).unwrap_err();
    assert!(err.to_string().contains("format"), "{err}");
    std::fs::write(&manifest_path, original).unwrap();
    restore(&good, &backups.path().join("r3")).expect("the untouched backup restores");

    // The data dir in use by this store: a second open names it.
    let err = Store::open(dir.path(), StoreConfig::default())
        .err()
        .expect("a second open of a dir in use fails");
    assert!(matches!(err, StorageError::Locked(_)), "{err:?}");
    assert!(err.to_string().contains("another Tijori process"), "{err}");

    // A closing store starts no backup (a running one stops the same way).
    store.close();
    let closed = backups.path().join("closed");
    let err = store.backup(&closed, limits()).unwrap_err();
    assert!(
        matches!(err, BackupError::Storage(StorageError::Closed)),
        "{err:?}"
    );
    assert!(!closed.join(MANIFEST_FILE).exists());
}
