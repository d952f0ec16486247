//! Settlements (SPEC §14) in storage: the typed commands a wallet writes
//! them with, and their reads. A settlement is stored as JSON under its id
//! (they are one per merchant per cycle, far from the hot path), listed by
//! merchant and by the merchant's manager, and waits for the rail in the
//! `Pending` space like pay-ins and payouts.

use crate::keys::{self, IndexTag};
use crate::reads::PendingId;
use crate::{PendingItem, PendingKind, Space, StorageError, Store, WriteSet};
use domain::{Settlement, SettlementId, UserId};

fn key(id: &SettlementId) -> Vec<u8> {
    id.as_bytes().to_vec()
}

impl WriteSet {
    /// A new settlement: the record, its listings (merchant, and team when
    /// the merchant has a manager) and its row in the rail's due queue,
    /// which is returned.
    pub fn settlement_created(
        &mut self,
        settlement: &Settlement,
        team: Option<&UserId>,
        settle_at_ms: i64,
    ) -> Result<PendingItem, StorageError> {
        self.settlement_saved(settlement)?;
        let id = settlement.id.as_bytes();
        let merchant = &settlement.merchant_id;
        self.put_raw(
            Space::Index,
            keys::index(IndexTag::SettlementsByMerchant, merchant, id),
            Vec::new(),
        );
        if let Some(team) = team {
            self.put_raw(
                Space::Index,
                keys::index(IndexTag::SettlementsByTeam, team, id),
                Vec::new(),
            );
        }
        let pending = PendingId::new(settle_at_ms, PendingKind::Settlement, id);
        self.put_raw(Space::Pending, pending.key(), merchant.as_bytes().to_vec());
        Ok(PendingItem {
            id: pending,
            due_unix_ms: settle_at_ms.max(0),
            kind: PendingKind::Settlement,
            record: *id,
            merchant_id: *merchant,
        })
    }

    /// A settlement changed (settled).
    pub fn settlement_saved(&mut self, settlement: &Settlement) -> Result<(), StorageError> {
        self.put(Space::Settlements, key(&settlement.id), settlement)
    }
}

impl Store {
    pub fn settlement(&self, id: &SettlementId) -> Result<Option<Settlement>, StorageError> {
        self.get(Space::Settlements, &key(id))
    }

    /// The merchant's newest settlement, if any (one index row read).
    pub fn latest_settlement(&self, merchant: &UserId) -> Result<Option<Settlement>, StorageError> {
        let newest = self
            .space(Space::Index)
            .prefix(keys::index_prefix(
                IndexTag::SettlementsByMerchant,
                merchant,
            ))
            .next_back();
        let Some(guard) = newest else {
            return Ok(None);
        };
        let key = guard.key()?;
        let id = key
            .len()
            .checked_sub(16)
            .and_then(|at| SettlementId::from_slice(&key[at..]))
            .ok_or_else(|| StorageError::Codec("index key of wrong length".into()))?;
        self.settlement(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;
    use domain::{Currency, Money, SettlementAccount, SettlementStatus, Timestamp};

    fn settlement(merchant: UserId) -> Settlement {
        let now = Timestamp::now();
        Settlement {
            id: SettlementId::new(),
            merchant_id: merchant,
            amount: Money::from_paise(12_345),
            currency: Currency::Inr,
            status: SettlementStatus::Pending,
            utr: None,
            failure_reason: None,
            reason: None,
            settlement_account: SettlementAccount {
                name: "Acme".into(),
                account_number: "123456789012".into(),
                ifsc: "HDFC0001234".into(),
            },
            first_seq: 1,
            last_seq: 4,
            first_posting: 1,
            last_posting: 5,
            created_at: now,
            updated_at: now,
            processed_at: None,
        }
    }

    #[tokio::test]
    async fn a_settlement_is_its_record_listings_and_due_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let (merchant, manager) = (UserId::new(), UserId::new());
        assert_eq!(store.latest_settlement(&merchant).unwrap(), None);
        let first = settlement(merchant);
        let second = settlement(merchant);
        for s in [&first, &second] {
            let mut writes = WriteSet::new();
            let due = writes
                .settlement_created(s, Some(&manager), 1_700_000_000_000)
                .unwrap();
            assert_eq!(due.kind, PendingKind::Settlement);
            store.commit(writes).await.unwrap();
        }
        assert_eq!(store.settlement(&first.id).unwrap(), Some(first.clone()));
        assert_eq!(store.latest_settlement(&merchant).unwrap(), Some(second));
        let due = store.due_pending(i64::MAX, 10).unwrap();
        assert_eq!(due.len(), 2);
        assert!(due.iter().all(|d| d.kind == PendingKind::Settlement));
        store.close();
    }
}
