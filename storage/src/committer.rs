//! Pipelined group commit in two stages, each on a thread of its own.
//!
//! 1. The committer takes every write set queued since its last round,
//!    writes each as ONE journal record (`journal.rs`) in one fjall batch,
//!    and persists the journal once (fdatasync in `sync` mode). The round is
//!    now durable.
//! 2. The indexer applies durable rounds to the keyspaces that reads use —
//!    records, indexes, ledger rows, outbox rows — in large batches (every
//!    round waiting for it, at most `INDEX_BATCH_MAX` write sets), removing
//!    the journal records it applied and writing the last sequence applied
//!    in the same batch, then resolves the rounds' tickets.
//!
//! So a write is visible to reads only once it is durable (SPEC §19: no
//! read shows what a crash could lose), and a ticket resolves only once its
//! write is both durable and visible (read-your-writes after a 2xx).
//! Submitters never block a tokio worker on the journal lock or an fsync;
//! while one round syncs the next queues up, so batches grow with load.
//!
//! A failed commit or fsync poisons fjall; we stop accepting writes (every
//! later ticket fails) instead of retrying, and the process must restart and
//! recover: fjall recovers its journal, and `Store::open` applies our journal
//! records after the indexer's last sequence.

use crate::{journal, Durability, Space, StorageError, StoreConfig, WriteSet};
use domain::metric_names as names;
use fjall::{Database, Keyspace, PersistMode};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// Resolves when the write set it was issued for is durable.
#[must_use = "a write is acknowledged only once its ticket resolves"]
pub struct Ticket {
    seq: u64,
    wait: Wait,
}

enum Wait {
    /// The write set's own round.
    Write(oneshot::Receiver<Result<(), StorageError>>),
    /// No write of its own: everything queued up to `seq` must be durable.
    Barrier(watch::Receiver<u64>, std::sync::Arc<AtomicBool>),
}

impl Ticket {
    /// The order in which the write set was queued; applied sets have
    /// `seq <= Store::applied_seq()`.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub async fn durable(self) -> Result<(), StorageError> {
        match self.wait {
            Wait::Write(done) => done.await.unwrap_or(Err(StorageError::Closed)),
            Wait::Barrier(mut durable, healthy) => {
                let target = self.seq;
                let reached = durable
                    .wait_for(|seq| *seq >= target || !healthy.load(Ordering::Acquire))
                    .await;
                match reached {
                    Ok(_) if healthy.load(Ordering::Acquire) => Ok(()),
                    Ok(_) => Err(StorageError::Poisoned),
                    Err(_) => Err(StorageError::Closed),
                }
            }
        }
    }
}

/// Counters for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub rounds: AtomicU64,
    pub write_sets: AtomicU64,
    pub fsync_nanos: AtomicU64,
    /// Rows in `WebhookDue` (deliveries waiting), kept by the indexer as
    /// it applies inserts and removes, so no gauge has to scan for it.
    pub due_rows: AtomicI64,
    /// The earliest due time among `WebhookDue` rows applied since the
    /// dispatcher last asked (`i64::MAX`: none), so that it can read
    /// forward from a cursor and still see rows applied behind it.
    pub min_new_due_ms: AtomicI64,
}

impl CommitStats {
    /// Mean number of write sets made durable by one fsync.
    pub fn mean_batch(&self) -> f64 {
        let rounds = self.rounds.load(Ordering::Relaxed).max(1);
        self.write_sets.load(Ordering::Relaxed) as f64 / rounds as f64
    }
}

struct Request {
    seq: u64,
    writes: WriteSet,
    done: oneshot::Sender<Result<(), StorageError>>,
}

pub(crate) struct Committer {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    /// Hands out sequence numbers in channel order (held only around a
    /// non-blocking send on an already reserved permit).
    next_seq: Mutex<u64>,
    applied: watch::Receiver<u64>,
    durable: watch::Receiver<u64>,
    healthy: std::sync::Arc<AtomicBool>,
    stats: std::sync::Arc<CommitStats>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held by the committer thread for each round, from its batch to its
    /// fsync; `between_rounds` takes it to see the store between two rounds.
    round: Arc<Mutex<()>>,
}

impl Committer {
    pub(crate) fn start(
        db: Database,
        spaces: Vec<Keyspace>,
        config: &StoreConfig,
        recovered: Recovered,
    ) -> Result<Committer, StorageError> {
        let (tx, rx) = mpsc::channel(config.commit_queue_depth.max(1));
        let (applied_tx, applied) = watch::channel(recovered.last_seq);
        let (durable_tx, durable) = watch::channel(recovered.last_seq);
        let healthy = std::sync::Arc::new(AtomicBool::new(true));
        let stats = std::sync::Arc::new(CommitStats {
            due_rows: AtomicI64::new(recovered.due_rows),
            min_new_due_ms: AtomicI64::new(i64::MAX),
            ..CommitStats::default()
        });
        let round = Arc::new(Mutex::new(()));
        let (rounds_tx, rounds_rx) = std_mpsc::sync_channel(INDEX_QUEUE_ROUNDS);
        let indexer = Indexer {
            db: db.clone(),
            spaces: spaces.clone(),
            rx: rounds_rx,
            durable: durable.clone(),
            applied: applied_tx.clone(),
            healthy: healthy.clone(),
            stats: stats.clone(),
            lag: std::time::Duration::from_millis(config.indexer_lag_ms),
        };
        let indexer = std::thread::Builder::new()
            .name("tijori-index".into())
            .spawn(move || indexer.run())
            .map_err(StorageError::from)?;
        let worker = Worker {
            db,
            journal: spaces[Space::Journal as usize].clone(),
            rx,
            rounds: Some(rounds_tx),
            indexer: Some(indexer),
            durable: durable_tx,
            applied: applied_tx,
            healthy: healthy.clone(),
            stats: stats.clone(),
            fail_after_rounds: config.fail_after_rounds,
            mode: match config.durability {
                Durability::Sync => PersistMode::SyncData,
                Durability::Buffered => PersistMode::Buffer,
            },
            batch_max: config.commit_batch_max.max(1),
            round: round.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("tijori-commit".into())
            .spawn(move || worker.run())
            .map_err(StorageError::from)?;
        Ok(Committer {
            tx: Mutex::new(Some(tx)),
            next_seq: Mutex::new(recovered.last_seq),
            applied,
            durable,
            healthy,
            stats,
            thread: Mutex::new(Some(thread)),
            round,
        })
    }

    fn sender(&self) -> Result<mpsc::Sender<Request>, StorageError> {
        let guard = self.tx.lock().map_err(|_| StorageError::Poisoned)?;
        guard.clone().ok_or(StorageError::Closed)
    }

    pub(crate) async fn submit(&self, writes: WriteSet) -> Result<Ticket, StorageError> {
        if !self.is_healthy() {
            return Err(StorageError::Poisoned);
        }
        let tx = self.sender()?;
        let permit = tx.reserve().await.map_err(|_| StorageError::Closed)?;
        let (done_tx, done) = oneshot::channel();
        let seq = {
            let mut next = self.next_seq.lock().map_err(|_| StorageError::Poisoned)?;
            *next += 1;
            permit.send(Request {
                seq: *next,
                writes,
                done: done_tx,
            });
            *next
        };
        Ok(Ticket {
            seq,
            wait: Wait::Write(done),
        })
    }

    pub(crate) async fn applied_barrier(&self) -> Result<(), StorageError> {
        let target = *self.next_seq.lock().map_err(|_| StorageError::Poisoned)?;
        let mut applied = self.applied.clone();
        // A poisoned store never applies what is queued: fail, don't hang.
        let healthy = &self.healthy;
        applied
            .wait_for(|seq| *seq >= target || !healthy.load(Ordering::Acquire))
            .await
            .map_err(|_| StorageError::Closed)?;
        if self.is_healthy() {
            Ok(())
        } else {
            Err(StorageError::Poisoned)
        }
    }

    /// A ticket that resolves once everything queued so far is durable and
    /// visible (applied: the indexer applies only durable rounds), without
    /// writing anything — like a write's own ticket.
    pub(crate) fn durable_barrier(&self) -> Result<Ticket, StorageError> {
        let seq = *self.next_seq.lock().map_err(|_| StorageError::Poisoned)?;
        Ok(Ticket {
            seq,
            wait: Wait::Barrier(self.applied.clone(), self.healthy.clone()),
        })
    }

    pub(crate) fn durable_seq(&self) -> u64 {
        *self.durable.borrow()
    }

    pub(crate) fn applied_seq(&self) -> u64 {
        *self.applied.borrow()
    }

    pub(crate) fn stats(&self) -> &CommitStats {
        &self.stats
    }

    /// Write sets queued for the committer (reserved or sent, not yet taken
    /// into a round) and the queue's bound; (0, 0) once closed.
    pub(crate) fn queue_depth(&self) -> (usize, usize) {
        let Ok(guard) = self.tx.lock() else {
            return (0, 0);
        };
        guard.as_ref().map_or((0, 0), |tx| {
            (
                tx.max_capacity().saturating_sub(tx.capacity()),
                tx.max_capacity(),
            )
        })
    }

    /// Runs `look` between two group-commit rounds, when every journal
    /// record in the database is durable (up to the returned sequence) and
    /// none is half-written; returns its result, that sequence, and how
    /// long the committer was kept waiting (at most: how long `look` took).
    /// Blocks the calling thread for up to one round: not for a tokio
    /// worker.
    pub(crate) fn between_rounds<T>(
        &self,
        look: impl FnOnce() -> T,
    ) -> Result<(T, u64, Duration), StorageError> {
        let _round = self.round.lock().map_err(|_| StorageError::Poisoned)?;
        let held = Instant::now();
        if !self.is_healthy() {
            return Err(StorageError::Poisoned);
        }
        let seen = look();
        let seq = self.durable_seq();
        Ok((seen, seq, held.elapsed()))
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// Where `Store::open` left the store: the last sequence in the journal
/// (every record up to it applied), and the due-rows count to start from.
pub(crate) struct Recovered {
    pub last_seq: u64,
    pub due_rows: i64,
}

/// Durable rounds waiting for the indexer, at most (then the committer waits).
const INDEX_QUEUE_ROUNDS: usize = 64;
/// Most write sets the indexer folds into one batch.
const INDEX_BATCH_MAX: usize = 16_384;
/// The `Meta` key of the last journal sequence the indexer applied.
pub(crate) const INDEXED_KEY: &[u8] = b"indexed";

type Round = Vec<Request>;

fn fail_round(round: Round, e: &StorageError) {
    for request in round {
        let _ = request.done.send(Err(e.clone()));
    }
}

struct Worker {
    db: Database,
    journal: Keyspace,
    rx: mpsc::Receiver<Request>,
    rounds: Option<std_mpsc::SyncSender<Round>>,
    indexer: Option<std::thread::JoinHandle<()>>,
    durable: watch::Sender<u64>,
    /// Only to wake those waiting for visibility when the store is
    /// poisoned (the indexer alone moves it).
    applied: watch::Sender<u64>,
    healthy: std::sync::Arc<AtomicBool>,
    stats: std::sync::Arc<CommitStats>,
    /// Fault injection for tests (`StoreConfig::fail_after_rounds`).
    fail_after_rounds: Option<u64>,
    mode: PersistMode,
    batch_max: usize,
    round: Arc<Mutex<()>>,
}

impl Worker {
    fn run(mut self) {
        while let Some(first) = self.rx.blocking_recv() {
            let mut round = Vec::with_capacity(self.batch_max.min(1_024));
            round.push(first);
            while round.len() < self.batch_max {
                match self.rx.try_recv() {
                    Ok(next) => round.push(next),
                    Err(_) => break,
                }
            }
            match self.commit_round(&round) {
                Ok(()) => {
                    let sent = self.rounds.as_ref().map(|tx| tx.send(round));
                    if let Some(Err(std_mpsc::SendError(round))) = sent {
                        fail_round(round, &StorageError::Closed);
                    }
                }
                Err(e) => fail_round(round, &e),
            }
        }
        // Closing: let the indexer apply everything durable, then stop it.
        self.rounds.take();
        if let Some(indexer) = self.indexer.take() {
            let _ = indexer.join();
        }
    }

    /// Writes the round's journal records and makes them durable.
    fn commit_round(&mut self, round: &[Request]) -> Result<(), StorageError> {
        let last_seq = round.last().map_or(0, |r| r.seq);
        // From the batch to the fsync and the durable sequence's update, so
        // that `between_rounds` never sees a journal record that is not
        // durable yet. Uncontended but for a backup taking its snapshot.
        let round_lock = self.round.clone();
        let _round = round_lock.lock().map_err(|_| StorageError::Poisoned)?;
        if !self.healthy.load(Ordering::Acquire) {
            return Err(StorageError::Poisoned);
        }
        let result = (|| {
            if self
                .fail_after_rounds
                .is_some_and(|n| self.stats.rounds.load(Ordering::Relaxed) >= n)
            {
                return Err(StorageError::from(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "injected fault: the disk is full",
                )));
            }
            let mut batch = fjall::OwnedWriteBatch::with_capacity(self.db.clone(), round.len());
            for request in round {
                let record = journal::encode(&request.writes)?;
                batch.insert(&self.journal, journal::key(request.seq), record);
            }
            batch.commit()?;
            let started = Instant::now();
            let persisted = self.db.persist(self.mode).map_err(StorageError::from);
            metrics::histogram!(names::STORAGE_FSYNC_DURATION)
                .record(started.elapsed().as_secs_f64());
            self.stats.fsync_nanos.fetch_add(
                u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            persisted
        })();
        match &result {
            Ok(()) => {
                metrics::counter!(names::STORAGE_COMMITS).increment(1);
                metrics::counter!(names::STORAGE_WRITE_SETS).increment(round.len() as u64);
                metrics::histogram!(names::STORAGE_FSYNC_BATCH).record(round.len() as f64);
                self.stats.rounds.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .write_sets
                    .fetch_add(round.len() as u64, Ordering::Relaxed);
                self.durable.send_replace(last_seq);
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; storage refuses further writes");
                metrics::counter!(names::STORAGE_COMMIT_FAILURES).increment(1);
                self.healthy.store(false, Ordering::Release);
                // Wake barrier waiters (durable and visible alike); their
                // callers will find the store unhealthy.
                self.durable.send_replace(last_seq);
                self.applied.send_modify(|_| {});
            }
        }
        result
    }
}

/// Applies durable rounds to the read keyspaces, then resolves their tickets.
struct Indexer {
    db: Database,
    spaces: Vec<Keyspace>,
    rx: std_mpsc::Receiver<Round>,
    durable: watch::Receiver<u64>,
    applied: watch::Sender<u64>,
    healthy: std::sync::Arc<AtomicBool>,
    stats: std::sync::Arc<CommitStats>,
    /// Fault injection for tests: how long to wait before each batch, so
    /// that the journal runs ahead of the indexer.
    lag: std::time::Duration,
}

impl Indexer {
    fn run(self) {
        while let Ok(first) = self.rx.recv() {
            if !self.lag.is_zero() {
                std::thread::sleep(self.lag);
            }
            let mut rounds = vec![first];
            let mut sets: usize = rounds[0].len();
            while sets < INDEX_BATCH_MAX {
                match self.rx.try_recv() {
                    Ok(next) => {
                        sets += next.len();
                        rounds.push(next);
                    }
                    Err(_) => break,
                }
            }
            let last_seq = rounds.last().and_then(|r| r.last()).map_or(0, |r| r.seq);
            let result = if self.healthy.load(Ordering::Acquire) {
                self.apply(&mut rounds, last_seq)
            } else {
                Err(StorageError::Poisoned)
            };
            if let Err(e) = &result {
                tracing::error!(error = %e, "indexing failed; storage refuses further writes");
                metrics::counter!(names::STORAGE_COMMIT_FAILURES).increment(1);
                self.healthy.store(false, Ordering::Release);
            }
            // Visible to reads from here on (or, on failure, wake the waiters).
            self.applied.send_replace(last_seq);
            let lag = self.durable.borrow().saturating_sub(last_seq);
            metrics::gauge!(names::STORAGE_INDEX_LAG).set(lag as f64);
            for round in rounds {
                for request in round {
                    let _ = request.done.send(result.clone());
                }
            }
        }
    }

    fn apply(&self, rounds: &mut [Round], last_seq: u64) -> Result<(), StorageError> {
        // Sized up front: one allocation, not a doubling series of ever
        // larger ones (each fresh to the allocator, so page faults).
        let items = 1 + rounds
            .iter()
            .flatten()
            .map(|request| request.writes.len() + 1)
            .sum::<usize>();
        let mut batch = fjall::OwnedWriteBatch::with_capacity(self.db.clone(), items);
        let journal = &self.spaces[Space::Journal as usize];
        let mut due = DueChanges::default();
        for request in rounds.iter_mut().flatten() {
            due.add(apply_ops(&mut batch, &self.spaces, &mut request.writes));
            // A journal key is written once and removed once: a weak
            // tombstone lets a flush drop the pair instead of writing both.
            batch.remove_weak(journal, journal::key(request.seq));
        }
        batch.insert(
            &self.spaces[Space::Meta as usize],
            INDEXED_KEY,
            last_seq.to_be_bytes(),
        );
        batch.commit()?;
        self.stats.due_rows.fetch_add(due.delta, Ordering::Relaxed);
        self.stats
            .min_new_due_ms
            .fetch_min(due.min_new_ms, Ordering::AcqRel);
        Ok(())
    }
}

/// What a batch did to the `WebhookDue` rows.
pub(crate) struct DueChanges {
    /// Rows added less rows removed.
    pub delta: i64,
    /// The earliest due time among the rows added (`i64::MAX`: none).
    pub min_new_ms: i64,
}

impl Default for DueChanges {
    fn default() -> Self {
        DueChanges {
            delta: 0,
            min_new_ms: i64::MAX,
        }
    }
}

impl DueChanges {
    fn add(&mut self, other: DueChanges) {
        self.delta += other.delta;
        self.min_new_ms = self.min_new_ms.min(other.min_new_ms);
    }
}

/// Adds a write set's operations to `batch`; returns what it does to the
/// `WebhookDue` rows.
pub(crate) fn apply_ops(
    batch: &mut fjall::OwnedWriteBatch,
    spaces: &[Keyspace],
    writes: &mut WriteSet,
) -> DueChanges {
    let mut due = DueChanges::default();
    for (space, key, value) in writes.ops.drain(..) {
        let keyspace = &spaces[space as usize];
        let is_due = space == Space::WebhookDue;
        match value {
            Some(value) => {
                if is_due {
                    due.delta += 1;
                    if let Ok(id) = crate::outbox::DueId::from_key(&key) {
                        due.min_new_ms = due.min_new_ms.min(id.due_unix_ms());
                    }
                }
                batch.insert(keyspace, key, value)
            }
            None => {
                due.delta -= i64::from(is_due);
                batch.remove(keyspace, key)
            }
        }
    }
    due
}
