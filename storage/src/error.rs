//! The storage crate's infrastructure errors. Business rejections never
//! appear here; these mean the disk or the data failed us.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// fjall reported an error (I/O, corruption, poisoning, lock).
    Engine(String),
    Io(String),
    /// A stored value did not decode: a bug or corruption.
    Codec(String),
    /// The data dir holds a store of another format version.
    Format(String),
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
            StorageError::Poisoned => {
                f.write_str("storage is poisoned by an earlier failed commit")
            }
            StorageError::Closed => f.write_str("storage is closed"),
        }
    }
}

impl std::error::Error for StorageError {}

impl From<fjall::Error> for StorageError {
    fn from(e: fjall::Error) -> Self {
        match e {
            fjall::Error::Poisoned => StorageError::Poisoned,
            other => StorageError::Engine(other.to_string()),
        }
    }
}

impl From<serde_json::Error> for StorageError {
    fn from(e: serde_json::Error) -> Self {
        StorageError::Codec(e.to_string())
    }
}
