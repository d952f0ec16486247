//! Durable state on fjall 3.x. One `Database` with one keyspace per kind of
//! record (`Space`). All writes go through the group committer
//! (`committer.rs`): a caller hands over a `WriteSet`, which is applied as
//! part of one atomic fjall batch, and gets a `Ticket` that resolves only
//! once the batch is durable (fsynced in `sync` mode, in OS buffers in
//! `buffered` mode). Reads go straight to fjall and never queue behind writes.
//!
//! Opening never scans records: start-up cost does not grow with history.

mod audit_log;
pub mod backup;
mod codec;
mod committer;
mod error;
mod journal;
pub mod keys;
pub mod outbox;
mod payout_lifecycle;
mod query;
mod reads;
mod settlements;
mod statements;
mod writeset;

pub use committer::{CommitStats, Ticket};
pub use error::StorageError;
pub use keys::UniqueKind;
pub use outbox::{DueCursor, DueDelivery, DueId};
pub use query::{Listing, Scope, Window};
pub use reads::{
    IdempotencyRecord, Page, PendingId, PendingItem, PendingKind, Replayable, StoredResponse,
    FIELD_DIGESTS_MAX,
};
pub use writeset::{Listed, WriteSet};

use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use std::path::Path;
use std::sync::Arc;

/// How far a write has gone before its ticket resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// fdatasync of the journal: survives power loss.
    #[default]
    Sync,
    /// Flushed to OS buffers: survives a process crash (kill -9), not power loss.
    Buffered,
}

/// The keyspaces. The discriminant indexes `Store::spaces`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    /// user id → User
    Users,
    /// SHA-256 of an API key → user id
    ApiKeys,
    /// payment id → Payment
    Payments,
    /// payout id → Payout
    Payouts,
    /// tag + owner id + record id → (empty); newest-first listings
    Index,
    /// merchant + kind + merchant's own id → record id
    Unique,
    /// merchant + currency → Wallet
    Wallets,
    /// merchant + posting → Transfer (every transfer a wallet posted)
    Ledger,
    /// transfer id → merchant + posting; every transfer, oldest first
    Transfers,
    /// merchant + user + Idempotency-Key → IdempotencyRecord
    Idempotency,
    /// event id → the event (codec `StoredEvent`): type, recipients, payload
    Outbox,
    /// due time + kind + record id → merchant id; what the connector settles
    Pending,
    /// due time + event id + recipient → (empty); webhook deliveries to attempt
    WebhookDue,
    /// event id + recipient → Delivery: the state of one event's delivery
    Deliveries,
    /// settlement id → Settlement (JSON)
    Settlements,
    /// refund id → Refund
    Refunds,
    /// merchant + date → daily Statement; merchant → its ChainPoint (statements.rs)
    Statements,
    /// audit id → AuditEntry (JSON; SPEC §16)
    Audit,
    /// sequence → journal record: durable commands not yet applied above
    Journal,
    /// store-level facts: the last journal sequence applied
    Meta,
}

impl Space {
    /// Every keyspace: the data ones, then the committer's own.
    pub const ALL: [Space; Space::DATA.len() + 2] = {
        let mut all = [Space::Journal; Space::DATA.len() + 2];
        let mut i = 0;
        while i < Space::DATA.len() {
            all[i] = Space::DATA[i];
            i += 1;
        }
        all[Space::DATA.len()] = Space::Journal;
        all[Space::DATA.len() + 1] = Space::Meta;
        all
    };

    /// The spaces that hold the store's data; the others (the journal and
    /// its checkpoint) belong to the committer and indexer alone.
    pub const DATA: [Space; 18] = [
        Space::Users,
        Space::ApiKeys,
        Space::Payments,
        Space::Payouts,
        Space::Index,
        Space::Unique,
        Space::Wallets,
        Space::Ledger,
        Space::Transfers,
        Space::Idempotency,
        Space::Outbox,
        Space::Pending,
        Space::WebhookDue,
        Space::Deliveries,
        Space::Settlements,
        Space::Refunds,
        Space::Statements,
        Space::Audit,
    ];

    /// Whether it is the committer's own (never in a write set).
    pub fn is_internal(self) -> bool {
        matches!(self, Space::Journal | Space::Meta)
    }

    fn name(self) -> &'static str {
        match self {
            Space::Users => "users",
            Space::ApiKeys => "api_keys",
            Space::Payments => "payments",
            Space::Payouts => "payouts",
            Space::Index => "index",
            Space::Unique => "unique",
            Space::Wallets => "wallets",
            Space::Ledger => "ledger",
            Space::Transfers => "transfers",
            Space::Idempotency => "idempotency",
            Space::Outbox => "outbox",
            Space::Pending => "pending",
            Space::WebhookDue => "webhook_due",
            Space::Deliveries => "deliveries",
            Space::Refunds => "refunds",
            Space::Statements => "statements",
            Space::Audit => "audit",
            Space::Journal => "journal",
            Space::Meta => "meta",
            Space::Settlements => "settlements",
        }
    }
}

/// Settings for `Store::open`.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub durability: Durability,
    /// Most write sets waiting for the committer before submitters wait.
    pub commit_queue_depth: usize,
    /// Most write sets folded into one fjall batch and one fsync.
    pub commit_batch_max: usize,
    /// Fault injection for tests: the indexer waits this long before each
    /// batch, so the journal runs ahead of it. 0 in production.
    pub indexer_lag_ms: u64,
    /// Fault injection for tests: after this many group commits, every
    /// commit fails as on a full disk (and poisons the store). `None` in
    /// production.
    pub fail_after_rounds: Option<u64>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            durability: Durability::Sync,
            commit_queue_depth: 8_192,
            commit_batch_max: 4_096,
            indexer_lag_ms: 0,
            fail_after_rounds: None,
        }
    }
}

/// A handle to the open store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    spaces: Vec<Keyspace>,
    committer: committer::Committer,
    /// The data dir, as given to `open`.
    dir: std::path::PathBuf,
    /// A backup is running (`backup.rs`): one at a time.
    backup_running: std::sync::atomic::AtomicBool,
    /// `close` was called: a running backup stops (shutdown must not wait
    /// for it) and no new one starts.
    closed: std::sync::atomic::AtomicBool,
}

/// The version of the on-disk layout this build reads and writes. A data
/// dir records it in `FORMAT_FILE` when it is created; any other version is
/// refused at open (nothing is deployed yet: there is no migration).
/// 3: pay-ins, payouts and webhook events in the binary codec (2 had
/// them as JSON), each delivery a record of its own.
/// 5: the audit log's space (SPEC §16) and four security event types.
/// 6: idempotency records in the binary codec.
/// 7: a wallet's amounts and counters as varints.
pub const FORMAT_VERSION: u32 = 7;
const FORMAT_FILE: &str = "TIJORI_FORMAT";
/// fjall's lower bound for its journals' total size.
const FJALL_JOURNAL_MAX_BYTES: u64 = 64 * 1_024 * 1_024;

/// Checks (or, in an empty dir, writes) the store format marker.
fn check_format(dir: &Path) -> Result<(), StorageError> {
    let io = StorageError::from;
    let marker = dir.join(FORMAT_FILE);
    match std::fs::read_to_string(&marker) {
        Ok(text) => {
            let found = text
                .trim()
                .strip_prefix("tijori-store ")
                .unwrap_or(text.trim());
            if found == FORMAT_VERSION.to_string() {
                Ok(())
            } else {
                Err(StorageError::Format(format!(
                    "{} holds a store in format v{found}; this Tijori reads format v{FORMAT_VERSION} \
                     (there is no migration: start with an empty --data-dir)",
                    dir.display()
                )))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::read_dir(dir).map_err(io)?.next().is_some() {
                return Err(StorageError::Format(format!(
                    "{} holds a store in format v1 (no {FORMAT_FILE} marker); this Tijori reads \
                     format v{FORMAT_VERSION} (there is no migration: start with an empty --data-dir)",
                    dir.display()
                )));
            }
            std::fs::write(&marker, format!("tijori-store {FORMAT_VERSION}\n")).map_err(io)
        }
        Err(e) => Err(io(e)),
    }
}

/// Applies the journal records the indexer had not applied when the store
/// was last closed (or killed), in order, with the indexer's progress in the
/// same batches; returns the last sequence in the journal. Reads only the
/// journal's tail: start-up does not grow with history.
fn recover(db: &Database, spaces: &[Keyspace]) -> Result<u64, StorageError> {
    const REPLAY_BATCH: usize = 1_024;
    let meta = &spaces[Space::Meta as usize];
    let journal = &spaces[Space::Journal as usize];
    let indexed = match meta.get(committer::INDEXED_KEY)? {
        Some(v) => journal::seq_of(&v)?,
        None => 0,
    };
    let mut last = indexed;
    let mut batch = db.batch();
    let mut pending = 0usize;
    let mut replayed = 0u64;
    for guard in journal.range(journal::key(indexed.saturating_add(1))..) {
        let (key, value) = guard.into_inner()?;
        let seq = journal::seq_of(&key)?;
        if seq != last + 1 {
            return Err(StorageError::Codec(format!(
                "journal skips from {last} to {seq}"
            )));
        }
        let mut writes = journal::decode(&value)?;
        committer::apply_ops(&mut batch, spaces, &mut writes);
        batch.remove_weak(journal, key);
        last = seq;
        pending += 1;
        replayed += 1;
        if pending == REPLAY_BATCH {
            batch.insert(meta, committer::INDEXED_KEY, last.to_be_bytes());
            std::mem::replace(&mut batch, db.batch()).commit()?;
            pending = 0;
        }
    }
    if replayed > 0 {
        batch.insert(meta, committer::INDEXED_KEY, last.to_be_bytes());
        batch.commit()?;
        db.persist(fjall::PersistMode::SyncData)?;
        tracing::info!(replayed, last_seq = last, "applied the journal's tail");
    }
    Ok(last)
}

impl Store {
    /// Opens (or creates) the store in `dir` and starts its committer thread.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Store, StorageError> {
        std::fs::create_dir_all(dir).map_err(StorageError::from)?;
        check_format(dir)?;
        // fjall's own journal (its write-ahead log) is replayed into memtables
        // at open: keeping it at fjall's smallest bound (it flushes memtables
        // to make room) bounds the start-up after a crash, whatever the
        // history (512 MiB by default took seconds to replay here).
        // fjall takes an exclusive lock on a file in the dir for as long as
        // the database is open: a second process on the same dir fails here.
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .max_journaling_size(FJALL_JOURNAL_MAX_BYTES)
            .open()
            .map_err(|e| match e {
                fjall::Error::Locked => StorageError::Locked(dir.display().to_string()),
                other => other.into(),
            })?;
        let spaces = Space::ALL
            .iter()
            .map(|s| db.keyspace(s.name(), KeyspaceCreateOptions::default))
            .collect::<Result<Vec<_>, _>>()?;
        let last_seq = recover(&db, &spaces)?;
        // The one count at open that the due-rows gauge starts from; from
        // here on the indexer keeps it as it applies writes.
        let due_rows = spaces[Space::WebhookDue as usize].len()?;
        let recovered = committer::Recovered {
            last_seq,
            due_rows: i64::try_from(due_rows).unwrap_or(i64::MAX),
        };
        let committer =
            committer::Committer::start(db.clone(), spaces.clone(), &config, recovered)?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                spaces,
                committer,
                dir: dir.to_path_buf(),
                backup_running: std::sync::atomic::AtomicBool::new(false),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    pub(crate) fn space(&self, space: Space) -> &Keyspace {
        &self.inner.spaces[space as usize]
    }

    /// Queues `writes` for the next group commit. Waits (asynchronously)
    /// only while the commit queue is full; the returned ticket resolves
    /// when the writes are durable.
    pub async fn submit(&self, writes: WriteSet) -> Result<Ticket, StorageError> {
        self.inner.committer.submit(writes).await
    }

    /// Writes and waits until durable: `submit` followed by the ticket.
    pub async fn commit(&self, writes: WriteSet) -> Result<(), StorageError> {
        self.submit(writes).await?.durable().await
    }

    /// Resolves once every write set submitted before this call has been
    /// applied to the store (is visible to reads). Used before loading state
    /// that an earlier actor incarnation may still have in flight.
    pub async fn applied_barrier(&self) -> Result<(), StorageError> {
        self.inner.committer.applied_barrier().await
    }

    /// A ticket that resolves once every write set queued before this call
    /// is durable and visible, as a write's own ticket does. For answers
    /// that depend on earlier writes (an idempotent replay, a balance)
    /// without writing anything themselves.
    pub fn durable_barrier(&self) -> Result<Ticket, StorageError> {
        self.inner.committer.durable_barrier()
    }

    /// The sequence number of the last write set made durable.
    pub fn durable_seq(&self) -> u64 {
        self.inner.committer.durable_seq()
    }

    /// The sequence number of the last write set applied (visible to reads).
    pub fn applied_seq(&self) -> u64 {
        self.inner.committer.applied_seq()
    }

    /// The earliest due time among webhook deliveries made visible since
    /// the last call, if any (and forgets it): a reader going forward from
    /// a cursor steps back to it, so rows applied behind it are not missed.
    pub fn take_min_new_due_ms(&self) -> Option<i64> {
        let min = self
            .stats()
            .min_new_due_ms
            .swap(i64::MAX, std::sync::atomic::Ordering::AcqRel);
        (min != i64::MAX).then_some(min)
    }

    /// Webhook deliveries waiting (due now or later), from a counter.
    pub fn due_rows(&self) -> u64 {
        u64::try_from(
            self.stats()
                .due_rows
                .load(std::sync::atomic::Ordering::Relaxed),
        )
        .unwrap_or(0)
    }

    pub fn stats(&self) -> &CommitStats {
        self.inner.committer.stats()
    }

    /// Write sets waiting for the committer, and the most that may wait
    /// (`commit_queue_depth`): its saturation, read from the channel.
    pub fn commit_queue(&self) -> (usize, usize) {
        self.inner.committer.queue_depth()
    }

    /// False once a commit or fsync has failed: the database is poisoned
    /// and the process must restart to recover from the journal.
    pub fn is_healthy(&self) -> bool {
        self.inner.committer.is_healthy()
    }

    /// Stops the committer after it has made everything queued durable.
    pub fn close(&self) {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.inner.committer.close();
        // A final sync so that nothing buffered is left behind on exit.
        let _ = self.inner.db.persist(fjall::PersistMode::SyncData);
    }
}
