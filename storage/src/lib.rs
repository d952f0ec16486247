//! Durable state on fjall 3.x. One `Database` with one keyspace per kind of
//! record (`Space`). All writes go through the group committer
//! (`committer.rs`): a caller hands over a `WriteSet`, which is applied as
//! part of one atomic fjall batch, and gets a `Ticket` that resolves only
//! once the batch is durable (fsynced in `sync` mode, in OS buffers in
//! `buffered` mode). Reads go straight to fjall and never queue behind writes.
//!
//! Opening never scans records: start-up cost does not grow with history.

mod committer;
mod error;
pub mod keys;
pub mod outbox;
mod overlay;
mod reads;
mod writeset;

pub use committer::{CommitStats, Ticket};
pub use error::StorageError;
pub use overlay::Overlay;
pub use reads::{IdempotencyRecord, Page, PendingItem, PendingKind};
pub use writeset::WriteSet;

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
    /// event id → OutboxEvent
    Outbox,
    /// due time + kind + record id → merchant id; what the connector settles
    Pending,
    /// due time + event id + recipient → (empty); webhook deliveries to attempt
    WebhookDue,
}

impl Space {
    pub const ALL: [Space; 13] = [
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
    ];

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
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            durability: Durability::Sync,
            commit_queue_depth: 8_192,
            commit_batch_max: 4_096,
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
}

/// The version of the on-disk layout this build reads and writes. A data
/// dir records it in `FORMAT_FILE` when it is created; any other version is
/// refused at open (nothing is deployed yet: there is no migration).
pub const FORMAT_VERSION: u32 = 2;
const FORMAT_FILE: &str = "TIJORI_FORMAT";

/// Checks (or, in an empty dir, writes) the store format marker.
fn check_format(dir: &Path) -> Result<(), StorageError> {
    let io = |e: std::io::Error| StorageError::Io(e.to_string());
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

impl Store {
    /// Opens (or creates) the store in `dir` and starts its committer thread.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Store, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Io(e.to_string()))?;
        check_format(dir)?;
        let db = Database::builder(dir).manual_journal_persist(true).open()?;
        let spaces = Space::ALL
            .iter()
            .map(|s| db.keyspace(s.name(), KeyspaceCreateOptions::default))
            .collect::<Result<Vec<_>, _>>()?;
        // The one count at open that the due-rows gauge starts from; from
        // here on the committer keeps it as it applies writes.
        let due_rows = spaces[Space::WebhookDue as usize].len()?;
        let committer = committer::Committer::start(
            db.clone(),
            spaces.clone(),
            &config,
            i64::try_from(due_rows).unwrap_or(i64::MAX),
        )?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                spaces,
                committer,
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
        self.inner.committer.submit(writes, None).await
    }

    /// `submit` for a writer that reads its own in-flight writes: the
    /// operations are remembered in `overlay` under the ticket's sequence.
    pub async fn submit_tracked(
        &self,
        writes: WriteSet,
        overlay: &mut Overlay,
    ) -> Result<Ticket, StorageError> {
        self.inner.committer.submit(writes, Some(overlay)).await
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
    /// is durable. For answers that depend on earlier writes (an idempotent
    /// replay) without writing anything themselves.
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

    /// False once a commit or fsync has failed: the database is poisoned
    /// and the process must restart to recover from the journal.
    pub fn is_healthy(&self) -> bool {
        self.inner.committer.is_healthy()
    }

    /// Stops the committer after it has made everything queued durable.
    pub fn close(&self) {
        self.inner.committer.close();
        // A final sync so that nothing buffered is left behind on exit.
        let _ = self.inner.db.persist(fjall::PersistMode::SyncData);
    }
}
