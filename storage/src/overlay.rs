//! What a single writer (a wallet actor) has submitted but the committer has
//! not applied yet. The wallet does not wait for its writes to become
//! durable before taking its next command, so its own reads must see its own
//! in-flight writes: reads go through the overlay first, then the store.
//! Entries are dropped once the store's applied sequence passes them, so the
//! overlay holds at most the writer's in-flight writes.

use crate::{Space, StorageError, Store, WriteSet};
use std::collections::{HashMap, VecDeque};

/// A write's key, and the queue sequence plus value (None: removed) it wrote.
type Key = (Space, Vec<u8>);
type Written = (u64, Option<Vec<u8>>);

#[derive(Default)]
pub struct Overlay {
    values: HashMap<Key, Written>,
    order: VecDeque<(u64, Space, Vec<u8>)>,
}

impl Overlay {
    /// Remembers the operations of `writes`, queued under `seq`.
    pub fn record(&mut self, seq: u64, writes: &WriteSet) {
        for (space, key, value) in writes.ops() {
            self.values
                .insert((space, key.to_vec()), (seq, value.map(<[u8]>::to_vec)));
            self.order.push_back((seq, space, key.to_vec()));
        }
    }

    /// Forgets everything the store has applied.
    pub fn prune(&mut self, applied_seq: u64) {
        while let Some((seq, _, _)) = self.order.front() {
            if *seq > applied_seq {
                break;
            }
            if let Some((seq, space, key)) = self.order.pop_front() {
                let k = (space, key);
                if self.values.get(&k).is_some_and(|(s, _)| *s == seq) {
                    self.values.remove(&k);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether this writer has a removal of `key` in flight.
    pub fn is_removed(&self, space: Space, key: &[u8]) -> bool {
        matches!(self.values.get(&(space, key.to_vec())), Some((_, None)))
    }

    /// Reads `key`, seeing this writer's own in-flight writes first.
    pub fn get(
        &self,
        store: &Store,
        space: Space,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some((_, value)) = self.values.get(&(space, key.to_vec())) {
            return Ok(value.clone());
        }
        store.get_raw(space, key)
    }
}
