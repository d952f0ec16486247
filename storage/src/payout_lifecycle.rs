//! Rows of the payout lifecycle (SPEC §13): a merchant's FIFO of queued
//! payouts (index rows keyed by merchant and UUIDv7, so key order is
//! arrival order), the due row that cancels a queued payout when its time
//! to live runs out, and the due row of a reversal the rail will make.

use crate::keys::{self, IndexTag, UniqueKind};
use crate::reads::PendingId;
use crate::writeset::Listed;
use crate::{codec, PendingItem, PendingKind, Space, StorageError, Store, WriteSet};
use domain::{Payout, PayoutId, UserId};

impl WriteSet {
    /// A new queued payout: the record, its listings, its reference id,
    /// its place in the merchant's FIFO and its expiry row (returned).
    pub fn payout_queued(
        &mut self,
        payout: &Payout,
        listed: Listed<'_>,
        expire_at_ms: i64,
    ) -> Result<PendingItem, StorageError> {
        let id = payout.id.as_bytes();
        self.payout_saved(payout)?;
        self.listing(
            &payout.merchant_id,
            [
                IndexTag::PayoutsByMerchant,
                IndexTag::PayoutsByCreator,
                IndexTag::PayoutsByTeam,
            ],
            listed,
            id,
        );
        if let Some(reference) = &payout.reference_id {
            self.put_raw(
                Space::Unique,
                keys::unique(&payout.merchant_id, UniqueKind::ReferenceId, reference),
                id.to_vec(),
            );
        }
        self.put_raw(
            Space::Index,
            keys::index(IndexTag::PayoutsQueued, &payout.merchant_id, id),
            Vec::new(),
        );
        Ok(self.pending(
            PendingKind::PayoutQueueExpiry,
            id,
            &payout.merchant_id,
            expire_at_ms,
        ))
    }

    /// A payout left its merchant's FIFO (now pending or cancelled): its
    /// queue row and its expiry row (due at `expire_at_ms`) go.
    pub fn payout_unqueued(
        &mut self,
        payout: &Payout,
        expire_at_ms: i64,
    ) -> Result<(), StorageError> {
        let id = payout.id.as_bytes();
        self.payout_saved(payout)?;
        self.remove(
            Space::Index,
            keys::index(IndexTag::PayoutsQueued, &payout.merchant_id, id),
        );
        self.settled(PendingId::new(
            expire_at_ms,
            PendingKind::PayoutQueueExpiry,
            id,
        ));
        Ok(())
    }

    /// A dequeued payout goes to the rail: its due row, returned.
    pub fn payout_due(&mut self, payout: &Payout, settle_at_ms: i64) -> PendingItem {
        self.pending(
            PendingKind::Payout,
            payout.id.as_bytes(),
            &payout.merchant_id,
            settle_at_ms,
        )
    }

    /// The rail will reverse a processed payout at `due_ms`: its due row.
    pub fn payout_reversal_due(&mut self, payout: &Payout, due_ms: i64) -> PendingItem {
        self.pending(
            PendingKind::PayoutReversal,
            payout.id.as_bytes(),
            &payout.merchant_id,
            due_ms,
        )
    }

    /// Appends another write set's operations (a batch of commands that
    /// must be one durable write).
    pub fn append(&mut self, other: WriteSet) {
        self.ops.extend(other.ops);
    }

    /// Keeps only the last write of each wallet row: after `append`ing
    /// several commands of one wallet, the earlier versions would only be
    /// overwritten within the same batch.
    pub fn keep_last_wallet(&mut self) {
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let mut keep = vec![true; self.ops.len()];
        for (i, (space, key, _)) in self.ops.iter().enumerate().rev() {
            if *space == Space::Wallets {
                if seen.contains(key) {
                    keep[i] = false;
                } else {
                    seen.push(key.clone());
                }
            }
        }
        let mut flags = keep.into_iter();
        self.ops.retain(|_| flags.next().unwrap_or(true));
    }
}

impl Store {
    /// A merchant's queued payouts, oldest first, at most `limit`: the one
    /// read that rebuilds a wallet's FIFO when it starts.
    pub fn queued_payouts(
        &self,
        merchant: &UserId,
        limit: usize,
    ) -> Result<Vec<Payout>, StorageError> {
        let prefix = keys::index_prefix(IndexTag::PayoutsQueued, merchant);
        let mut out = Vec::new();
        for guard in self.space(Space::Index).prefix(&prefix).take(limit) {
            let key = guard.key()?;
            let id = key
                .get(prefix.len()..)
                .and_then(|k| <[u8; 16]>::try_from(k).ok())
                .ok_or_else(|| StorageError::Codec("queue key of wrong length".into()))?;
            let Some(bytes) = self.space(Space::Payouts).get(id)? else {
                continue;
            };
            let payout: Payout = codec::from_bytes(&bytes)?;
            if payout.id == PayoutId::from_bytes(id) {
                out.push(payout);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Currency, Timestamp, Wallet};

    #[test]
    fn only_the_last_version_of_a_wallet_is_kept() {
        let (a, b) = (UserId::new(), UserId::new());
        let mut writes = WriteSet::new();
        for (who, n) in [(a, 1), (b, 1), (a, 2), (a, 3)] {
            let mut w = Wallet::new(who, Currency::Inr, Timestamp::from_unix_ms(n));
            w.last_posting = n as u64;
            let mut one = WriteSet::new();
            one.put_wallet(&w);
            one.put_raw(Space::Payouts, vec![n as u8], Vec::new());
            writes.append(one);
        }
        writes.keep_last_wallet();
        let wallets: Vec<Wallet> = writes
            .ops()
            .filter(|(space, _, _)| *space == Space::Wallets)
            .map(|(_, _, v)| codec::from_bytes(v.unwrap()).unwrap())
            .collect();
        assert_eq!(
            wallets
                .iter()
                .map(|w| (w.merchant_id, w.last_posting))
                .collect::<Vec<_>>(),
            [(b, 1), (a, 3)]
        );
        assert_eq!(writes.len(), 4 + 2);
    }
}
