//! The storage crate's infrastructure errors. Business rejections never
//! appear here; these mean the disk or the data failed us.

use std::fmt;
use std::sync::Arc;

/// Cloneable (one failed round answers every ticket in it), so the sources
/// are shared.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StorageError {
    /// fjall reported an error (I/O, corruption, poisoning, lock).
    Engine(Arc<fjall::Error>),
    Io(Arc<std::io::Error>),
    /// A stored value did not decode: a bug or corruption.
    Codec(String),
    /// The data dir holds a store of another format version.
    Format(String),
    /// Another process has the data dir (named) open.
    Locked(String),
    /// An earlier commit failed; the database refuses further writes.
    Poisoned,
    /// The store was closed (shutdown).
    Closed,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Engine(e) => write!(f, "storage engine: {e}"),
            StorageError::Io(e) => write!(f, "storage i/o: {e}"),
            StorageError::Codec(e) => write!(f, "stored value does not decode: {e}"),
            StorageError::Format(e) => f.write_str(e),
            StorageError::Locked(dir) => write!(
                f,
                "the data dir {dir} is locked: another Tijori process holds it"
            ),
            StorageError::Poisoned => {
                f.write_str("storage is poisoned by an earlier failed commit")
            }
            StorageError::Closed => f.write_str("storage is closed"),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Engine(e) => Some(e.as_ref()),
            StorageError::Io(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        StorageError::Io(Arc::new(e))
    }
}

impl From<fjall::Error> for StorageError {
    fn from(e: fjall::Error) -> Self {
        match e {
            fjall::Error::Poisoned => StorageError::Poisoned,
            other => StorageError::Engine(Arc::new(other)),
        }
    }
}

impl From<serde_json::Error> for StorageError {
    fn from(e: serde_json::Error) -> Self {
        StorageError::Codec(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn infrastructure_errors_keep_their_source() {
        let io = StorageError::from(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "no space left on device",
        ));
        let source = io.source().map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("no space left on device"));
        assert!(io.to_string().contains("no space left"));
        assert!(StorageError::Poisoned.source().is_none());
        let copy = io.clone();
        assert!(copy.source().is_some());
    }
}
