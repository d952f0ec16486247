//! Online backup of a running store, and offline restore.
//!
//! A backup is a point-in-time copy: between two group-commit rounds
//! (`Committer::between_rounds`) it opens one fjall snapshot across every
//! keyspace, at a moment when every journal record in the database is
//! durable and the indexer's batches are whole (each is one atomic fjall
//! batch). The snapshot therefore holds everything acknowledged up to a
//! sequence S, the journal records the indexer had not applied yet and its
//! checkpoint (`Meta`), and nothing half-applied. Writes go on while the
//! snapshot is streamed, keyspace by keyspace, into a fresh fjall database
//! in the target directory, which is then fsynced; the store's format
//! marker follows, and the manifest (`MANIFEST_FILE`: format versions, S,
//! rows per keyspace, creation time) is written last, atomically. A
//! directory without a manifest is a backup that did not finish.
//!
//! Restore copies a finished backup into an empty data dir, fsyncs it, and
//! checks it against the manifest. The server started on it recovers as
//! after any stop: it applies the journal records after the checkpoint.

use crate::{Space, StorageError, Store, FORMAT_FILE, FORMAT_VERSION};
use fjall::{Database, KeyspaceCreateOptions, PersistMode, Readable};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The name of the manifest in a backup directory; written last.
pub const MANIFEST_FILE: &str = "TIJORI_BACKUP";
/// The layout of a backup directory this build writes and restores.
pub const BACKUP_FORMAT: u32 = 1;
/// Bytes of keys and values gathered before a batch is written.
const COPY_BATCH_BYTES: usize = 4 * 1_024 * 1_024;
/// The destination's journal bound, as for the store itself.
const JOURNAL_MAX_BYTES: u64 = 64 * 1_024 * 1_024;

/// Bounds on one backup: a snapshot pins old versions in the store while
/// it is held, and the target's disk is finite.
#[derive(Clone, Copy, Debug)]
pub struct BackupLimits {
    pub time_max: Duration,
    /// Keys plus values copied, at most.
    pub bytes_max: u64,
}

/// What a backup holds. Its presence marks a finished backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub backup_format: u32,
    /// The store format (`FORMAT_VERSION`) of the copied database.
    pub store_format: u32,
    /// Every write set up to this sequence is in the backup, none after.
    pub sequence: u64,
    pub created_at_ms: i64,
    /// Rows per keyspace, by keyspace name.
    pub rows: BTreeMap<String, u64>,
    /// Bytes of keys and values copied.
    pub bytes: u64,
}

impl Manifest {
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// A finished backup.
#[derive(Clone, Debug)]
pub struct BackupReport {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub duration: Duration,
    /// How long the committer could not start a round because of the backup.
    pub write_pause: Duration,
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum BackupError {
    /// The target directory cannot be used (relative, not empty, inside the
    /// data dir, ...).
    Target(String),
    /// Another backup of this store is running.
    Busy,
    /// The backup went past its time or size limit; the target holds a
    /// partial copy without a manifest.
    Limit(String),
    /// What was offered for a restore is not a finished backup this build
    /// can restore, or the copy does not match its manifest.
    Invalid(String),
    Storage(StorageError),
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupError::Target(why) | BackupError::Limit(why) | BackupError::Invalid(why) => {
                f.write_str(why)
            }
            BackupError::Busy => f.write_str("another backup is running"),
            BackupError::Storage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BackupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BackupError::Storage(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StorageError> for BackupError {
    fn from(e: StorageError) -> Self {
        BackupError::Storage(e)
    }
}

impl From<fjall::Error> for BackupError {
    fn from(e: fjall::Error) -> Self {
        BackupError::Storage(e.into())
    }
}

impl From<std::io::Error> for BackupError {
    fn from(e: std::io::Error) -> Self {
        BackupError::Storage(e.into())
    }
}

/// Clears the store's "backup running" flag when the backup ends.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Store {
    /// Copies the store, as of one moment between two commit rounds, into
    /// `to` (absolute; absent or an empty directory; not inside the data
    /// dir) while writes go on. Blocking: run it off the async workers.
    pub fn backup(&self, to: &Path, limits: BackupLimits) -> Result<BackupReport, BackupError> {
        let started = Instant::now();
        if self
            .inner
            .backup_running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(BackupError::Busy);
        }
        let _running = Running(&self.inner.backup_running);
        self.open_for_backup()?;
        prepare_target(to, Some(&self.inner.dir))?;
        let (snapshot, sequence, write_pause) = self
            .inner
            .committer
            .between_rounds(|| self.inner.db.snapshot())?;
        let created_at_ms = domain::time::Timestamp::now().unix_ms();
        let target = open_fjall(to)?;
        let mut rows = BTreeMap::new();
        let mut bytes: u64 = 0;
        for space in Space::ALL {
            let source = self.space(space);
            let dest = target.keyspace(space.name(), KeyspaceCreateOptions::default)?;
            let mut batch = target.batch();
            let (mut count, mut batched) = (0u64, 0usize);
            for guard in snapshot.iter(source) {
                let (key, value) = guard.into_inner()?;
                let size = key.len() + value.len();
                batched += size;
                bytes = bytes.saturating_add(size as u64);
                count += 1;
                batch.insert(&dest, key, value);
                if batched >= COPY_BATCH_BYTES {
                    std::mem::replace(&mut batch, target.batch()).commit()?;
                    batched = 0;
                    self.open_for_backup()?;
                    within_limits(to, &limits, started, bytes)?;
                }
            }
            batch.commit()?;
            self.open_for_backup()?;
            within_limits(to, &limits, started, bytes)?;
            rows.insert(space.name().to_owned(), count);
        }
        drop(snapshot);
        target.persist(PersistMode::SyncAll)?;
        drop(target);
        write_durably(
            &to.join(FORMAT_FILE),
            format!("tijori-store {FORMAT_VERSION}\n").as_bytes(),
        )?;
        let manifest = Manifest {
            backup_format: BACKUP_FORMAT,
            store_format: FORMAT_VERSION,
            sequence,
            created_at_ms,
            rows,
            bytes,
        };
        let text = serde_json::to_vec_pretty(&manifest).map_err(StorageError::from)?;
        write_durably(&to.join(MANIFEST_FILE), &text)?;
        Ok(BackupReport {
            dir: to.to_path_buf(),
            manifest,
            duration: started.elapsed(),
            write_pause,
        })
    }
}

impl Store {
    /// A backup stops once the store is closing: shutdown does not wait
    /// for it (the target is left without a manifest).
    fn open_for_backup(&self) -> Result<(), BackupError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(BackupError::Storage(StorageError::Closed));
        }
        Ok(())
    }
}

fn within_limits(
    to: &Path,
    limits: &BackupLimits,
    started: Instant,
    bytes: u64,
) -> Result<(), BackupError> {
    let partial = |what: String| {
        BackupError::Limit(format!(
            "{what}; the partial copy in {} has no manifest and cannot be restored: remove it",
            to.display()
        ))
    };
    if started.elapsed() > limits.time_max {
        return Err(partial(format!(
            "the backup took longer than its limit of {} s",
            limits.time_max.as_secs()
        )));
    }
    if bytes > limits.bytes_max {
        return Err(partial(format!(
            "the store holds more than the backup size limit of {} bytes",
            limits.bytes_max
        )));
    }
    Ok(())
}

fn open_fjall(dir: &Path) -> Result<Database, BackupError> {
    Ok(Database::builder(dir)
        .manual_journal_persist(true)
        .max_journaling_size(JOURNAL_MAX_BYTES)
        .open()?)
}

/// Checks that `to` may receive a backup or a restore, and creates it if
/// it does not exist: an absolute path, absent or an empty directory, whose
/// parent exists, and (for a backup) not inside the data dir `store_dir`.
fn prepare_target(to: &Path, store_dir: Option<&Path>) -> Result<(), BackupError> {
    let shown = to.display();
    if !to.is_absolute() {
        return Err(BackupError::Target(format!(
            "{shown} is not an absolute path"
        )));
    }
    let exists = match std::fs::symlink_metadata(to) {
        Ok(meta) if meta.is_dir() => {
            if std::fs::read_dir(to)?.next().is_some() {
                return Err(BackupError::Target(format!(
                    "{shown} is not empty: give a new or an empty directory"
                )));
            }
            true
        }
        Ok(_) => {
            return Err(BackupError::Target(format!(
                "{shown} exists and is not a directory"
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e.into()),
    };
    let (parent, name) = match (to.parent(), to.file_name()) {
        (Some(parent), Some(name)) => (parent, name),
        _ => {
            return Err(BackupError::Target(format!(
                "{shown} cannot be a backup directory"
            )))
        }
    };
    let parent = std::fs::canonicalize(parent).map_err(|e| {
        BackupError::Target(format!(
            "the parent directory of {shown} is not usable: {e}"
        ))
    })?;
    if let Some(store_dir) = store_dir {
        let store_dir = std::fs::canonicalize(store_dir)?;
        if parent.join(name).starts_with(&store_dir) {
            return Err(BackupError::Target(format!(
                "{shown} is inside the data dir {}",
                store_dir.display()
            )));
        }
    }
    if !exists {
        std::fs::create_dir(to)?;
        sync_dir(&parent)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` so that a crash leaves either nothing or all
/// of it: a temporary file, fsynced, renamed, and the directory fsynced.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Reads and checks the manifest of the backup in `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::Invalid(format!(
                "{} has no {MANIFEST_FILE} manifest: it is not a finished Tijori backup \
                 (a backup that was cut short has none)",
                dir.display()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| BackupError::Invalid(format!("{} does not parse: {e}", path.display())))?;
    if manifest.backup_format != BACKUP_FORMAT || manifest.store_format != FORMAT_VERSION {
        return Err(BackupError::Invalid(format!(
            "{} is a backup in format v{} of a store in format v{}; this Tijori restores \
             backups in format v{BACKUP_FORMAT} of stores in format v{FORMAT_VERSION}",
            dir.display(),
            manifest.backup_format,
            manifest.store_format
        )));
    }
    Ok(manifest)
}

/// Restores the finished backup in `from` into `to` (absolute; absent or
/// an empty directory): copies it, fsyncs it, and checks every keyspace's
/// rows against the manifest. Offline: no server may use `to`.
pub fn restore(from: &Path, to: &Path) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(from)?;
    prepare_target(to, None)?;
    copy_tree(from, to, true)?;
    let copy = open_fjall(to)?;
    for space in Space::ALL {
        let keyspace = copy.keyspace(space.name(), KeyspaceCreateOptions::default)?;
        let found = keyspace.len()? as u64;
        let want = manifest.rows.get(space.name()).copied().unwrap_or(0);
        if found != want {
            return Err(BackupError::Invalid(format!(
                "the copy in {} holds {found} rows in {}, its manifest says {want}: \
                 the backup is damaged (remove {} before trying another)",
                to.display(),
                space.name(),
                to.display()
            )));
        }
    }
    copy.persist(PersistMode::SyncAll)?;
    Ok(manifest)
}

/// Copies the files and directories under `from` into `to` (existing),
/// fsyncing each; at the top level, the manifest stays behind.
fn copy_tree(from: &Path, to: &Path, top: bool) -> Result<(), BackupError> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if top && name == MANIFEST_FILE {
            continue;
        }
        let kind = entry.file_type()?;
        let (source, dest) = (entry.path(), to.join(&name));
        if kind.is_dir() {
            std::fs::create_dir(&dest)?;
            copy_tree(&source, &dest, false)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &dest)?;
            File::open(&dest)?.sync_all()?;
        } else {
            return Err(BackupError::Invalid(format!(
                "{} is neither a file nor a directory: not part of a Tijori backup",
                source.display()
            )));
        }
    }
    sync_dir(to)
}
