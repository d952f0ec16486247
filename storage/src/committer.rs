//! Pipelined group commit. One thread owns writing: it takes every write set
//! queued since its last round, applies them all as ONE fjall batch, persists
//! the journal once (fdatasync in `sync` mode), and only then resolves their
//! tickets. Submitters never block a tokio worker on the journal lock or on
//! an fsync; while one round is syncing the next one queues up, so the batch
//! grows with load and throughput grows with concurrency.
//!
//! A failed commit or fsync poisons fjall; we stop accepting writes (every
//! later ticket fails) instead of retrying, and the process must restart and
//! recover from the journal.

use crate::{Durability, Overlay, StorageError, StoreConfig, WriteSet};
use domain::metric_names as names;
use fjall::{Database, Keyspace, PersistMode};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
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
    /// Rows in `WebhookDue` (deliveries waiting), kept by the committer as
    /// it applies inserts and removes, so no gauge has to scan for it.
    pub due_rows: AtomicI64,
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
}

impl Committer {
    pub(crate) fn start(
        db: Database,
        spaces: Vec<Keyspace>,
        config: &StoreConfig,
        due_rows: i64,
    ) -> Result<Committer, StorageError> {
        let (tx, rx) = mpsc::channel(config.commit_queue_depth.max(1));
        let (applied_tx, applied) = watch::channel(0);
        let (durable_tx, durable) = watch::channel(0);
        let healthy = std::sync::Arc::new(AtomicBool::new(true));
        let stats = std::sync::Arc::new(CommitStats {
            due_rows: AtomicI64::new(due_rows),
            ..CommitStats::default()
        });
        let worker = Worker {
            db,
            spaces,
            rx,
            applied: applied_tx,
            durable: durable_tx,
            healthy: healthy.clone(),
            stats: stats.clone(),
            mode: match config.durability {
                Durability::Sync => PersistMode::SyncData,
                Durability::Buffered => PersistMode::Buffer,
            },
            batch_max: config.commit_batch_max.max(1),
        };
        let thread = std::thread::Builder::new()
            .name("tijori-commit".into())
            .spawn(move || worker.run())
            .map_err(|e| StorageError::Io(e.to_string()))?;
        Ok(Committer {
            tx: Mutex::new(Some(tx)),
            next_seq: Mutex::new(0),
            applied,
            durable,
            healthy,
            stats,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn sender(&self) -> Result<mpsc::Sender<Request>, StorageError> {
        let guard = self.tx.lock().map_err(|_| StorageError::Poisoned)?;
        guard.clone().ok_or(StorageError::Closed)
    }

    pub(crate) async fn submit(
        &self,
        writes: WriteSet,
        overlay: Option<&mut Overlay>,
    ) -> Result<Ticket, StorageError> {
        if !self.is_healthy() {
            return Err(StorageError::Poisoned);
        }
        let tx = self.sender()?;
        let permit = tx.reserve().await.map_err(|_| StorageError::Closed)?;
        let (done_tx, done) = oneshot::channel();
        let seq = {
            let mut next = self.next_seq.lock().map_err(|_| StorageError::Poisoned)?;
            *next += 1;
            if let Some(overlay) = overlay {
                overlay.record(*next, &writes);
            }
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
        applied
            .wait_for(|seq| *seq >= target)
            .await
            .map(|_| ())
            .map_err(|_| StorageError::Closed)
    }

    /// A ticket that resolves once everything queued so far is durable,
    /// without writing anything.
    pub(crate) fn durable_barrier(&self) -> Result<Ticket, StorageError> {
        let seq = *self.next_seq.lock().map_err(|_| StorageError::Poisoned)?;
        Ok(Ticket {
            seq,
            wait: Wait::Barrier(self.durable.clone(), self.healthy.clone()),
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

struct Worker {
    db: Database,
    spaces: Vec<Keyspace>,
    rx: mpsc::Receiver<Request>,
    applied: watch::Sender<u64>,
    durable: watch::Sender<u64>,
    healthy: std::sync::Arc<AtomicBool>,
    stats: std::sync::Arc<CommitStats>,
    mode: PersistMode,
    batch_max: usize,
}

impl Worker {
    fn run(mut self) {
        let mut round = Vec::with_capacity(self.batch_max);
        while let Some(first) = self.rx.blocking_recv() {
            round.push(first);
            while round.len() < self.batch_max {
                match self.rx.try_recv() {
                    Ok(next) => round.push(next),
                    Err(_) => break,
                }
            }
            let result = self.commit_round(&mut round);
            for request in round.drain(..) {
                let _ = request.done.send(result.clone());
            }
        }
    }

    fn commit_round(&mut self, round: &mut [Request]) -> Result<(), StorageError> {
        let last_seq = round.last().map_or(0, |r| r.seq);
        if !self.healthy.load(Ordering::Acquire) {
            return Err(StorageError::Poisoned);
        }
        let mut batch = self.db.batch();
        let mut due_delta = 0i64;
        for request in round.iter_mut() {
            for (space, key, value) in request.writes.ops.drain(..) {
                let keyspace = &self.spaces[space as usize];
                let is_due = space == crate::Space::WebhookDue;
                match value {
                    Some(value) => {
                        due_delta += i64::from(is_due);
                        batch.insert(keyspace, key, value)
                    }
                    None => {
                        due_delta -= i64::from(is_due);
                        batch.remove(keyspace, key)
                    }
                }
            }
        }
        let result = batch.commit().map_err(StorageError::from).and_then(|()| {
            // Visible to reads from here on, durable after the persist.
            self.applied.send_replace(last_seq);
            let started = Instant::now();
            let persisted = self.db.persist(self.mode).map_err(StorageError::from);
            metrics::histogram!(names::STORAGE_FSYNC_DURATION)
                .record(started.elapsed().as_secs_f64());
            self.stats.fsync_nanos.fetch_add(
                u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            persisted
        });
        match &result {
            Ok(()) => {
                metrics::counter!(names::STORAGE_COMMITS).increment(1);
                metrics::counter!(names::STORAGE_WRITE_SETS).increment(round.len() as u64);
                metrics::histogram!(names::STORAGE_FSYNC_BATCH).record(round.len() as f64);
                self.stats.rounds.fetch_add(1, Ordering::Relaxed);
                self.stats.due_rows.fetch_add(due_delta, Ordering::Relaxed);
                self.stats
                    .write_sets
                    .fetch_add(round.len() as u64, Ordering::Relaxed);
                self.durable.send_replace(last_seq);
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; storage refuses further writes");
                metrics::counter!(names::STORAGE_COMMIT_FAILURES).increment(1);
                self.healthy.store(false, Ordering::Release);
                // Wake barrier waiters; their callers will find the store unhealthy.
                self.applied.send_replace(last_seq);
                self.durable.send_replace(last_seq);
            }
        }
        result
    }
}
