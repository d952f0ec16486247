//! A `WriteSet` is everything one command changes: records, indexes, ledger
//! entries, idempotency and outbox rows. It is applied atomically.

use crate::{codec, keys, Space, StorageError};
use domain::{Transfer, Wallet};
use serde::Serialize;

#[derive(Debug, Default)]
pub struct WriteSet {
    pub(crate) ops: Vec<(Space, Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteSet {
    pub fn new() -> WriteSet {
        WriteSet {
            ops: Vec::with_capacity(8),
        }
    }

    pub fn put_raw(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        assert!(!space.is_internal(), "a write set wrote {space:?}");
        self.ops.push((space, key, Some(value)));
    }

    pub fn put<T: Serialize>(
        &mut self,
        space: Space,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value)?;
        self.put_raw(space, key, bytes);
        Ok(())
    }

    /// A posted transfer: under its wallet and posting number, and by id.
    pub fn put_transfer(&mut self, transfer: &Transfer) {
        let posting = keys::ledger(&transfer.merchant_id, transfer.posting);
        self.put_raw(Space::Ledger, posting.clone(), codec::to_bytes(transfer));
        self.put_raw(Space::Transfers, keys::transfer(&transfer.id), posting);
    }

    /// A wallet, under its merchant and currency.
    pub fn put_wallet(&mut self, wallet: &Wallet) {
        let key = keys::wallet(&wallet.merchant_id, wallet.currency);
        self.put_raw(Space::Wallets, key, codec::to_bytes(wallet));
    }

    pub fn remove(&mut self, space: Space, key: Vec<u8>) {
        assert!(!space.is_internal(), "a write set removed from {space:?}");
        self.ops.push((space, key, None));
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations, for an overlay to remember.
    pub fn ops(&self) -> impl Iterator<Item = (Space, &[u8], Option<&[u8]>)> {
        self.ops
            .iter()
            .map(|(s, k, v)| (*s, k.as_slice(), v.as_deref()))
    }
}
